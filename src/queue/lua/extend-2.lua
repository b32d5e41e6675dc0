--[[
  Extend the leases a worker still holds (its heartbeat), each only while its
  epoch is the holder's.

  KEYS[1] epochs   hash
  KEYS[2] leases   zset

  ARGV[1] lease duration in ms
  ARGV[2..] pairs: partitionKey, epoch

  Returns one number per pair: 1 extended, 0 the lease is lost.
]]
local t = redis.call('TIME')
local expires = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1]))
local out = {}
for i = 2, #ARGV, 2 do
  local pk = ARGV[i]
  if redis.call('HGET', KEYS[1], pk) == ARGV[i + 1] and redis.call('ZSCORE', KEYS[2], pk) then
    redis.call('ZADD', KEYS[2], expires, pk)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
