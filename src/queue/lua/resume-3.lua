--[[
  Resume a halted partition.

  KEYS[1] halted   hash
  KEYS[2] pending  zset
  KEYS[3] the partition's list

  ARGV[1] partitionKey

  Returns -1 not halted, 0 resumed with nothing queued, 1 resumed with trades
  queued (the caller must add its drain token).
]]
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then
  return -1
end
local head = redis.call('LINDEX', KEYS[3], 0)
if not head then
  return 0
end
redis.call('ZADD', KEYS[2], string.match(head, '^%d+|(%d+)|'), ARGV[1])
return 1
