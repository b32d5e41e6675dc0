--[[
  Acknowledge the head entries a lease holder has committed: pop exactly them,
  only while the lease is still held, keep the signals exact, and return the
  next batch in the same round trip.

  KEYS[1] the partition's list
  KEYS[2] BullMQ lock key of the token job
  KEYS[3] epochs   hash  partitionKey -> lease epoch
  KEYS[4] backlog  hash  tradeId -> "payloadHash|seq|partitionKey"
  KEYS[5] pending  zset
  KEYS[6] halted   hash

  ARGV[1] the worker's BullMQ lock token
  ARGV[2] partitionKey
  ARGV[3] lease epoch
  ARGV[4] number of head entries to pop
  ARGV[5] seq of the first of them
  ARGV[6] seq of the last of them
  ARGV[7] base prefix (done markers are ARGV[7].."done:"..tradeId)
  ARGV[8] dedup window in seconds for the done markers (0 = keep none)
  ARGV[9] how many entries of the next batch to return (0 = none)

  Returns
    { -1 }  the BullMQ lock is not this worker's (stalled, paused, taken over)
    { -2 }  another lease was taken since (epoch moved on)
    { -3 }  the head is not the entries given (nothing popped)
    { remaining, halted, entry1, ... }  entries left in the list, 1 if the
            partition was halted meanwhile (by an operator), then the next batch
]]
local listKey = KEYS[1]
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return { -1 }
end
if redis.call('HGET', KEYS[3], ARGV[2]) ~= ARGV[3] then
  return { -2 }
end
local count = tonumber(ARGV[4])
local entries = redis.call('LRANGE', listKey, 0, count - 1)
if #entries ~= count
  or string.match(entries[1], '^(%d+)|') ~= ARGV[5]
  or string.match(entries[count], '^(%d+)|') ~= ARGV[6] then
  return { -3 }
end
redis.call('LTRIM', listKey, count, -1)

local base, window = ARGV[7], tonumber(ARGV[8])
for i = 1, count do
  local id = string.match(entries[i], '^%d+|%d+|([^|]+)|')
  local info = redis.call('HGET', KEYS[4], id)
  if info then
    redis.call('HDEL', KEYS[4], id)
    if window > 0 then
      redis.call('SET', base .. 'done:' .. id, info, 'EX', window)
    end
  end
end

local remaining = redis.call('LLEN', listKey)
local halted = redis.call('HEXISTS', KEYS[6], ARGV[2])
local out
if remaining > 0 then
  local head = redis.call('LINDEX', listKey, 0)
  -- XX: a halted partition is not pending and must not become so here
  redis.call('ZADD', KEYS[5], 'XX', string.match(head, '^%d+|(%d+)|'), ARGV[2])
  local want = tonumber(ARGV[9])
  if want > 0 and halted == 0 then
    out = redis.call('LRANGE', listKey, 0, want - 1)
  else
    out = {}
  end
else
  redis.call('ZREM', KEYS[5], ARGV[2])
  out = {}
end
table.insert(out, 1, halted)
table.insert(out, 1, remaining)
return out
