--[[
  Halt a partition: it keeps its trades, leaves the pending set (it asks for no
  worker) and is drained again only after resume-3.

  KEYS[1] BullMQ lock key of the token job ("" when an operator halts)
  KEYS[2] epochs   hash
  KEYS[3] halted   hash
  KEYS[4] pending  zset

  ARGV[1] the worker's BullMQ lock token ("" when an operator halts)
  ARGV[2] partitionKey
  ARGV[3] lease epoch ("" when an operator halts)
  ARGV[4] reason (JSON)

  Returns 1 halted, 0 already halted (reason kept), -1 / -2 a lease holder that
  lost its BullMQ lock / its lease (nothing changed).
]]
if ARGV[1] ~= '' then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return -1
  end
  if redis.call('HGET', KEYS[2], ARGV[2]) ~= ARGV[3] then
    return -2
  end
end
redis.call('ZREM', KEYS[4], ARGV[2])
return redis.call('HSETNX', KEYS[3], ARGV[2], ARGV[4])
