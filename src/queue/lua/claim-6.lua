--[[
  Claim up to N partitions for one worker in one round trip: take a lease
  (fencing epoch) on each and return its first batch of head entries.

  KEYS[1] ready    zset  partitionKey -> ms from which it may be claimed
                         (enqueue/ack time; a future time for a retry backoff)
  KEYS[2] leases   zset  partitionKey -> ms at which the lease expires
  KEYS[3] epochs   hash  partitionKey -> lease epoch
  KEYS[4] halted   hash  partitionKey -> reason
  KEYS[5] attempts hash  partitionKey -> failed attempts since its last ack
  KEYS[6] stalls   hash  partitionKey -> leases that expired (worker died or froze)

  ARGV[1] base prefix (lists are ARGV[1].."p:"..pk)
  ARGV[2] N, the most partitions to claim
  ARGV[3] lease duration in ms
  ARGV[4] entries per batch

  Expired leases come first: their holder died or froze, and their trades are
  the oldest waiting. A new lease increments the epoch, so the old holder is
  refused by ack-many and by PostgreSQL (fencing).

  Returns { wait, claim1, claim2, ... }:
    wait    when nothing was claimed, in how many ms something may become
            claimable (a retry backoff ends, a lease expires), or -1 when
            nothing is ready, backing off or leased; 0 when something was claimed
    claim   { partitionKey, epoch, attempt, stalled (0/1), entry1, entry2, ... }
]]
local readyKey, leasesKey, epochsKey, haltedKey, attemptsKey, stallsKey =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local base, n, leaseMs, batch = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expires = string.format('%.0f', now + leaseMs)
local nowArg = string.format('%.0f', now)

local out = { 0 }

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
  out[#out + 1] = entries
end

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

if #out == 1 then
  local nextMs = -1
  local r = redis.call('ZRANGE', readyKey, 0, 0, 'WITHSCORES')
  if r[2] then nextMs = tonumber(r[2]) end
  local l = redis.call('ZRANGE', leasesKey, 0, 0, 'WITHSCORES')
  if l[2] and (nextMs == -1 or tonumber(l[2]) < nextMs) then nextMs = tonumber(l[2]) end
  if nextMs ~= -1 then nextMs = math.max(0, nextMs - now) end
  out[1] = nextMs
end
return out
