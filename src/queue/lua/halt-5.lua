--[[
  Halt a partition: it keeps its trades, leaves the pending set (it asks for no
  worker), is never claimed, and is drained again only after resume-6.

  KEYS[1] epochs   hash
  KEYS[2] halted   hash
  KEYS[3] pending  zset
  KEYS[4] ready    zset
  KEYS[5] leases   zset

  ARGV[1] partitionKey
  ARGV[2] lease epoch of the worker halting it ("" when an operator halts: a
          worker holding the lease then stops at its next ack)
  ARGV[3] reason (JSON)

  Returns 1 halted, 0 already halted (reason kept), -2 a lease holder that
  lost its lease (nothing changed).
]]
local pk = ARGV[1]
if ARGV[2] ~= '' then
  if redis.call('HGET', KEYS[1], pk) ~= ARGV[2] then
    return -2
  end
  redis.call('ZREM', KEYS[5], pk)
end
redis.call('ZREM', KEYS[3], pk)
redis.call('ZREM', KEYS[4], pk)
return redis.call('HSETNX', KEYS[2], pk, ARGV[3])
