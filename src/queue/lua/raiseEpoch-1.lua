--[[
  Raise a partition's lease epoch to at least a value PostgreSQL has seen. After
  Redis lost its epochs (a restart without persistence), new leases would get
  epochs below the positions' lease_epoch and be fenced forever; raising the
  counter TO the stored epoch (never past it) lets the next lease commit again
  while a live holder of that very epoch is not disturbed.

  KEYS[1] epochs   hash  partitionKey -> lease epoch

  ARGV[1] partitionKey
  ARGV[2] the epoch PostgreSQL stored

  Returns 1 when raised, 0 when the counter was already there or beyond.
]]
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if current < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
