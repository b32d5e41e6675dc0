--[[
  Of the partitions given, return those still pending that have no live drain
  token (a producer that died between enqueue and token add, a token that
  failed for good, a token removed by hand), for the reconciler to re-arm.

  KEYS[1] pending  zset

  ARGV[1] prefix of BullMQ's deduplication keys of the token queue
  ARGV[2] prefix of BullMQ's job hashes of the token queue
  ARGV[3..] partition keys (a page of a ZSCAN of the pending set)

  Returns the partition keys to re-arm. A deduplication key whose job no
  longer exists is deleted, so that the re-arm is not swallowed by it.
]]
local out = {}
for i = 3, #ARGV do
  local pk = ARGV[i]
  if redis.call('ZSCORE', KEYS[1], pk) then
    local dedupKey = ARGV[1] .. pk
    local jobId = redis.call('GET', dedupKey)
    if not jobId then
      out[#out + 1] = pk
    elseif redis.call('EXISTS', ARGV[2] .. jobId) == 0 then
      redis.call('DEL', dedupKey)
      out[#out + 1] = pk
    end
  end
end
return out
