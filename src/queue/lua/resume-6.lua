--[[
  Resume a halted partition and, when it has trades, make it claimable.

  KEYS[1] halted   hash
  KEYS[2] pending  zset
  KEYS[3] the partition's list
  KEYS[4] ready    zset
  KEYS[5] leases   zset
  KEYS[6] wake     list

  ARGV[1] partitionKey

  Returns -1 not halted, 0 resumed with nothing queued, 1 resumed with trades
  queued. A partition an operator halted while a worker held its lease is
  made ready by that worker's ack (when it still holds the lease), not here,
  so that no second lease fences the first for nothing.
]]
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then
  return -1
end
local head = redis.call('LINDEX', KEYS[3], 0)
if not head then
  return 0
end
redis.call('ZADD', KEYS[2], string.match(head, '^%d+|(%d+)|'), ARGV[1])
if not redis.call('ZSCORE', KEYS[5], ARGV[1]) then
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[4], 'NX', string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)), ARGV[1])
  if redis.call('LLEN', KEYS[6]) < 16 then
    redis.call('RPUSH', KEYS[6], 1)
  end
end
return 1
