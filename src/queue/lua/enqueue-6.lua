--[[
  Enqueue trades atomically: duplicate check, per-partition seq, RPUSH, signals.

  KEYS[1] seqs     hash  partitionKey -> last seq
  KEYS[2] backlog  hash  tradeId -> "payloadHash|seq|partitionKey" of unapplied trades
  KEYS[3] pending  zset  partitions with unapplied trades, scored by head enqueue ms
  KEYS[4] halted   hash  partitionKey -> reason
  KEYS[5] ready    zset  partitions a worker may claim, scored by the ms they may be claimed from
  KEYS[6] wake     list  bounded wake-up signals for idle workers (BLPOP)

  ARGV[1] base prefix: lists are ARGV[1].."p:"..pk, done markers ARGV[1].."done:"..id
  ARGV[2] max backlog (0 = unlimited); the whole call is refused when
          backlog + number of items would exceed it
  ARGV[3..] groups of four per item: partitionKey, tradeId, payloadHash, body

  Returns a flat array.
    Refused for backpressure: { -1, backlog }.
    Otherwise three numbers per item, in order:
      status  0 = accepted, 1 = duplicate (same payload), 2 = conflict (other payload)
      seq     the assigned seq, or the first seq of the duplicate/conflicting trade
      arm     1 when the partition went from empty to non-empty (it was made
              ready for the workers in this same call), else 0

  A list entry is "seq|enqueuedMs|tradeId|body"; tradeIds never contain "|".
  The body argument may start with "~<traceparent>|" (see codec.ts): stored
  as given, it is opaque here.
]]
local seqsKey, backlogKey, pendingKey, haltedKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local readyKey, wakeKey = KEYS[5], KEYS[6]
local base = ARGV[1]
local maxBacklog = tonumber(ARGV[2])
local n = (#ARGV - 2) / 4

if maxBacklog > 0 then
  local backlog = redis.call('HLEN', backlogKey)
  if backlog + n > maxBacklog then
    return { -1, backlog }
  end
end

local t = redis.call('TIME')
local now = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))

local out = {}
local armed = false
for i = 0, n - 1 do
  local pk = ARGV[3 + i * 4]
  local id = ARGV[4 + i * 4]
  local hash = ARGV[5 + i * 4]
  local body = ARGV[6 + i * 4]

  local known = redis.call('HGET', backlogKey, id)
  if not known then
    known = redis.call('GET', base .. 'done:' .. id)
  end
  if known then
    local knownHash, knownSeq = string.match(known, '^([^|]*)|(%d+)|')
    out[#out + 1] = (knownHash == hash) and 1 or 2
    out[#out + 1] = tonumber(knownSeq)
    out[#out + 1] = 0
  else
    local seq = redis.call('HINCRBY', seqsKey, pk, 1)
    local listKey = base .. 'p:' .. pk
    local len = redis.call('RPUSH', listKey, seq .. '|' .. now .. '|' .. id .. '|' .. body)
    redis.call('HSET', backlogKey, id, hash .. '|' .. seq .. '|' .. pk)
    local arm = 0
    if len == 1 and redis.call('HEXISTS', haltedKey, pk) == 0 then
      redis.call('ZADD', pendingKey, 'NX', now, pk)
      redis.call('ZADD', readyKey, 'NX', now, pk)
      arm = 1
    end
    out[#out + 1] = 0
    out[#out + 1] = seq
    if arm == 1 then armed = true end
    out[#out + 1] = arm
  end
end
if armed and redis.call('LLEN', wakeKey) < 16 then
  redis.call('RPUSH', wakeKey, 1)
end
return out
