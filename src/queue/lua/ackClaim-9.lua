--[[
  The worker's one round trip: acknowledge, for several leases at once, the
  head entries each lease holder has committed (each partition's next batch
  comes back in the same reply), then claim up to N more partitions, filling
  the slots those acks freed. With no acks it is a plain claim; with N = 0 a
  plain ack.

  KEYS[1] epochs   hash  partitionKey -> lease epoch
  KEYS[2] backlog  hash  tradeId -> "payloadHash|seq|partitionKey"
  KEYS[3] pending  zset
  KEYS[4] halted   hash  partitionKey -> reason
  KEYS[5] ready    zset  partitionKey -> ms from which it may be claimed
                         (enqueue/ack time; a future time for a retry backoff)
  KEYS[6] leases   zset  partitionKey -> ms at which the lease expires
  KEYS[7] attempts hash  partitionKey -> failed attempts since its last ack
  KEYS[8] wake     list  bounded wake-up signals for idle workers
  KEYS[9] stalls   hash  partitionKey -> leases that expired (worker died or froze)

  ARGV[1] base prefix (lists ARGV[1].."p:"..pk, done markers ARGV[1].."done:"..tradeId)
  ARGV[2] dedup window in seconds for the done markers (0 = keep none)
  ARGV[3] lease duration in ms (new leases, and leases that go on, expire that much later)
  ARGV[4] entries per batch of a new lease
  ARGV[5] free: lease slots the caller has free now (besides those the acks free)
  ARGV[6] most partitions to claim in this call (0: ack only)
  ARGV[7..] groups of six per ack:
            partitionKey, epoch, number of head entries to pop, seq of the
            first, seq of the last, want:
              > 0  keep the lease and return up to `want` entries of the next batch
              0    release the lease; a partition with trades left is made ready
                   again, at the back (round-robin across partitions)
              -1   keep the lease and return nothing (the holder halts it next)

  Claims: up to min(ARGV[6], free + leases the acks ended) partitions.
  Expired leases come first: their holder died or froze, and their trades
  are the oldest waiting. A new lease increments the epoch, so the old holder
  is refused here and by PostgreSQL (fencing).

  Returns { wait, acks, claims }:
    wait    when nothing was claimed (and a claim was asked for), in how many
            ms something may become claimable (a retry backoff ends, a lease
            expires), or -1 when nothing is ready, backing off or leased;
            otherwise 0
    acks    one reply per ack, in order:
              { -2 }  another lease was taken since (epoch moved on): nothing popped
              { -3 }  the head is not the entries given: nothing popped
              { remaining, halted, entry1, ... }  entries left in the list, 1 if
                      the partition was halted meanwhile (by an operator; the
                      lease is then released and the partition left alone),
                      then the next batch
    claims  { partitionKey, epoch, attempt, stalled (0/1), entry1, entry2, ... } each
]]
local epochsKey, backlogKey, pendingKey, haltedKey, readyKey, leasesKey, attemptsKey, wakeKey, stallsKey =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local base, window, leaseMs, batch = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local free, most = tonumber(ARGV[5]), tonumber(ARGV[6])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nowArg = string.format('%.0f', now)
local expires = string.format('%.0f', now + leaseMs)
local rearmed = false
-- Leases the acks ended (released, halted, emptied, or lost): slots for the claims.
local ended = 0

local function ackOne(pk, epoch, count, firstSeq, lastSeq, want)
  if redis.call('HGET', epochsKey, pk) ~= epoch then
    ended = ended + 1
    return { -2 }
  end
  local listKey = base .. 'p:' .. pk
  local entries = redis.call('LRANGE', listKey, 0, count - 1)
  if #entries ~= count
    or string.match(entries[1], '^(%d+)|') ~= firstSeq
    or string.match(entries[count], '^(%d+)|') ~= lastSeq then
    ended = ended + 1
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
      ended = ended + 1
    elseif want > 0 then
      redis.call('ZADD', leasesKey, expires, pk)
      out = redis.call('LRANGE', listKey, 0, want - 1)
    elseif want == 0 then
      redis.call('ZREM', leasesKey, pk)
      redis.call('ZADD', readyKey, nowArg, pk)
      rearmed = true
      ended = ended + 1
    end
  else
    redis.call('ZREM', pendingKey, pk)
    redis.call('ZREM', leasesKey, pk)
    ended = ended + 1
  end
  table.insert(out, 1, halted)
  table.insert(out, 1, remaining)
  return out
end

local acks = {}
for i = 7, #ARGV, 6 do
  acks[#acks + 1] = ackOne(ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3], ARGV[i + 4],
    tonumber(ARGV[i + 5]))
end

local claims = {}

local function take(pk, stalled)
  if redis.call('HEXISTS', haltedKey, pk) == 1 then
    redis.call('ZREM', leasesKey, pk)
    return
  end
  local entries = redis.call('LRANGE', base .. 'p:' .. pk, 0, batch - 1)
  if #entries == 0 then
    redis.call('ZREM', leasesKey, pk)
    return
  end
  local epoch = redis.call('HINCRBY', epochsKey, pk, 1)
  redis.call('ZADD', leasesKey, expires, pk)
  local attempt = tonumber(redis.call('HGET', attemptsKey, pk) or '0')
  if stalled == 1 then
    redis.call('HINCRBY', stallsKey, pk, 1)
  end
  table.insert(entries, 1, stalled)
  table.insert(entries, 1, attempt)
  table.insert(entries, 1, epoch)
  table.insert(entries, 1, pk)
  claims[#claims + 1] = entries
end

local n = math.min(most, free + ended)
local wait = 0
if n > 0 then
  local expired = redis.call('ZRANGEBYSCORE', leasesKey, '-inf', nowArg, 'LIMIT', 0, n)
  for _, pk in ipairs(expired) do
    take(pk, 1)
  end
  local room = n - #expired
  if room > 0 then
    local ready = redis.call('ZRANGEBYSCORE', readyKey, '-inf', nowArg, 'LIMIT', 0, room)
    if #ready > 0 then
      redis.call('ZREM', readyKey, unpack(ready))
      for _, pk in ipairs(ready) do
        take(pk, 0)
      end
    end
  end
  if #claims == 0 then
    wait = -1
    local r = redis.call('ZRANGE', readyKey, 0, 0, 'WITHSCORES')
    if r[2] then wait = tonumber(r[2]) end
    local l = redis.call('ZRANGE', leasesKey, 0, 0, 'WITHSCORES')
    if l[2] and (wait == -1 or tonumber(l[2]) < wait) then wait = tonumber(l[2]) end
    if wait ~= -1 then wait = math.max(0, wait - now) end
  end
end

-- A partition made ready again that this call did not take back: wake an idle worker.
if rearmed and redis.call('ZCARD', readyKey) > 0 and redis.call('LLEN', wakeKey) < 16 then
  redis.call('RPUSH', wakeKey, 1)
end
return { wait, acks, claims }
