--[[
  Make claimable again the partitions that have trades but are neither ready,
  leased nor halted (state changed by hand, a partial Redis restore): the
  reconciler's repair. Enqueue, ack and resume keep this true on their own.

  KEYS[1] pending  zset
  KEYS[2] halted   hash
  KEYS[3] ready    zset
  KEYS[4] leases   zset
  KEYS[5] wake     list

  ARGV[1], ARGV[2], ... the partitionKeys to look at

  Returns the partitions made ready.
]]
local out = {}
local t = redis.call('TIME')
local now = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
for i = 1, #ARGV do
  local pk = ARGV[i]
  if redis.call('ZSCORE', KEYS[1], pk)
    and redis.call('HEXISTS', KEYS[2], pk) == 0
    and not redis.call('ZSCORE', KEYS[3], pk)
    and not redis.call('ZSCORE', KEYS[4], pk) then
    redis.call('ZADD', KEYS[3], now, pk)
    out[#out + 1] = pk
  end
end
if #out > 0 and redis.call('LLEN', KEYS[5]) < 16 then
  redis.call('RPUSH', KEYS[5], 1)
end
return out
