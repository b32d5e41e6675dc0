--[[
  Give up a lease without acking anything (the batch failed): the partition
  keeps its head and becomes claimable again after a backoff, by any worker.

  KEYS[1] epochs   hash
  KEYS[2] leases   zset
  KEYS[3] ready    zset
  KEYS[4] attempts hash
  KEYS[5] halted   hash

  ARGV[1] partitionKey
  ARGV[2] lease epoch
  ARGV[3] backoff in ms before it may be claimed again
  ARGV[4] 1 to count a failed attempt, 0 not to (a worker shutting down)

  Returns the partition's failed attempts so far, or -2 when the lease was
  lost (epoch moved on: nothing changed).
]]
local pk = ARGV[1]
if redis.call('HGET', KEYS[1], pk) ~= ARGV[2] then
  return -2
end
redis.call('ZREM', KEYS[2], pk)
local attempts = tonumber(redis.call('HGET', KEYS[4], pk) or '0')
if ARGV[4] == '1' then
  attempts = redis.call('HINCRBY', KEYS[4], pk, 1)
end
if redis.call('HEXISTS', KEYS[5], pk) == 0 then
  local t = redis.call('TIME')
  local at = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[3])
  redis.call('ZADD', KEYS[3], string.format('%.0f', at), pk)
end
return attempts
