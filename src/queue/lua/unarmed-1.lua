--[[
  Find pending partitions that have no live drain token (a producer that died
  between enqueue and token add, a token that failed for good, a token removed
  by hand), for the reconciler to re-arm.

  KEYS[1] pending  zset

  ARGV[1] prefix of BullMQ's deduplication keys of the token queue
  ARGV[2] prefix of BullMQ's job hashes of the token queue
  ARGV[3] offset into the pending set (by rank)
  ARGV[4] how many partitions to look at

  Returns { pendingCount, pk1, pk2, ... } with the partitions to re-arm. A
  deduplication key whose job no longer exists is deleted, so the re-arm is
  not swallowed by it.
]]
local out = { redis.call('ZCARD', KEYS[1]) }
local start = tonumber(ARGV[3])
local pks = redis.call('ZRANGE', KEYS[1], start, start + tonumber(ARGV[4]) - 1)
for _, pk in ipairs(pks) do
  local dedupKey = ARGV[1] .. pk
  local jobId = redis.call('GET', dedupKey)
  if not jobId then
    out[#out + 1] = pk
  elseif redis.call('EXISTS', ARGV[2] .. jobId) == 0 then
    redis.call('DEL', dedupKey)
    out[#out + 1] = pk
  end
end
return out
