--[[
  Acknowledge, for several leases at once, the head entries each lease holder
  has committed: pop exactly them, only while the lease is still held, keep the
  signals exact, and return each partition's next batch in the same round trip.

  KEYS[1] epochs   hash  partitionKey -> lease epoch
  KEYS[2] backlog  hash  tradeId -> "payloadHash|seq|partitionKey"
  KEYS[3] pending  zset
  KEYS[4] halted   hash
  KEYS[5] ready    zset
  KEYS[6] leases   zset
  KEYS[7] attempts hash
  KEYS[8] wake     list

  ARGV[1] base prefix (lists ARGV[1].."p:"..pk, done markers ARGV[1].."done:"..tradeId)
  ARGV[2] dedup window in seconds for the done markers (0 = keep none)
  ARGV[3] lease duration in ms (a lease that goes on is extended by it)
  ARGV[4..] groups of six per lease:
            partitionKey, epoch, number of head entries to pop, seq of the
            first, seq of the last, want:
              > 0  keep the lease and return up to `want` entries of the next batch
              0    release the lease; a partition with trades left is made ready
                   again, at the back (round-robin across partitions)
              -1   keep the lease and return nothing (the holder halts it next)

  Returns one reply per lease, in order:
    { -2 }  another lease was taken since (epoch moved on): nothing popped
    { -3 }  the head is not the entries given: nothing popped
    { remaining, halted, entry1, ... }  entries left in the list, 1 if the
            partition was halted meanwhile (by an operator; the lease is then
            released and the partition left alone), then the next batch
]]
local epochsKey, backlogKey, pendingKey, haltedKey, readyKey, leasesKey, attemptsKey, wakeKey =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local base, window, leaseMs = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nowArg = string.format('%.0f', now)
local expires = string.format('%.0f', now + leaseMs)
local rearmed = false

local function ackOne(pk, epoch, count, firstSeq, lastSeq, want)
  if redis.call('HGET', epochsKey, pk) ~= epoch then
    return { -2 }
  end
  local listKey = base .. 'p:' .. pk
  local entries = redis.call('LRANGE', listKey, 0, count - 1)
  if #entries ~= count
    or string.match(entries[1], '^(%d+)|') ~= firstSeq
    or string.match(entries[count], '^(%d+)|') ~= lastSeq then
    return { -3 }
  end
  redis.call('LTRIM', listKey, count, -1)
  for i = 1, count do
    local id = string.match(entries[i], '^%d+|%d+|([^|]+)|')
    local info = redis.call('HGET', backlogKey, id)
    if info then
      redis.call('HDEL', backlogKey, id)
      if window > 0 then
        redis.call('SET', base .. 'done:' .. id, info, 'EX', window)
      end
    end
  end
  redis.call('HDEL', attemptsKey, pk)

  local remaining = redis.call('LLEN', listKey)
  local halted = redis.call('HEXISTS', haltedKey, pk)
  local out = {}
  if remaining > 0 then
    local head = redis.call('LINDEX', listKey, 0)
    -- XX: a halted partition is not pending and must not become so here
    redis.call('ZADD', pendingKey, 'XX', string.match(head, '^%d+|(%d+)|'), pk)
    if halted == 1 then
      redis.call('ZREM', leasesKey, pk)
    elseif want > 0 then
      redis.call('ZADD', leasesKey, expires, pk)
      out = redis.call('LRANGE', listKey, 0, want - 1)
    elseif want == 0 then
      redis.call('ZREM', leasesKey, pk)
      redis.call('ZADD', readyKey, nowArg, pk)
      rearmed = true
    end
  else
    redis.call('ZREM', pendingKey, pk)
    redis.call('ZREM', leasesKey, pk)
  end
  table.insert(out, 1, halted)
  table.insert(out, 1, remaining)
  return out
end

local replies = {}
for i = 4, #ARGV, 6 do
  replies[#replies + 1] = ackOne(ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3], ARGV[i + 4],
    tonumber(ARGV[i + 5]))
end
if rearmed and redis.call('LLEN', wakeKey) < 16 then
  redis.call('RPUSH', wakeKey, 1)
end
return replies
