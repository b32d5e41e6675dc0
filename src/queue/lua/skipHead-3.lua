--[[
  Remove the head trade of a HALTED partition (an operator's "skip"). The caller
  records it (dead letter) in PostgreSQL first, fenced by seq, so a crash
  between the two steps loses nothing: the worker skips an already-recorded seq.

  KEYS[1] halted   hash
  KEYS[2] the partition's list
  KEYS[3] backlog  hash

  ARGV[1] partitionKey
  ARGV[2] the seq the operator saw at the head
  ARGV[3] base prefix (done markers)
  ARGV[4] dedup window in seconds

  Returns the removed entry, or -1 not halted, -2 the head is not ARGV[2].
]]
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return -1
end
local head = redis.call('LINDEX', KEYS[2], 0)
if not head or string.match(head, '^(%d+)|') ~= ARGV[2] then
  return -2
end
redis.call('LPOP', KEYS[2])
local id = string.match(head, '^%d+|%d+|([^|]+)|')
local info = redis.call('HGET', KEYS[3], id)
if info then
  redis.call('HDEL', KEYS[3], id)
  if tonumber(ARGV[4]) > 0 then
    redis.call('SET', ARGV[3] .. 'done:' .. id, info, 'EX', tonumber(ARGV[4]))
  end
end
return head
