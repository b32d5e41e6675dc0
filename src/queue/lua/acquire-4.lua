--[[
  Take the lease of a partition for the drain token a worker holds.

  KEYS[1] BullMQ lock key of the token job (value: the owning worker's token)
  KEYS[2] epochs   hash  partitionKey -> lease epoch
  KEYS[3] halted   hash  partitionKey -> reason
  KEYS[4] the partition's list

  ARGV[1] the worker's BullMQ lock token
  ARGV[2] partitionKey
  ARGV[3] how many head entries to return (the first batch)

  Returns
    { -1 }                    the BullMQ lock is not (or no longer) this worker's
    { -2 }                    the partition is halted: take nothing
    { epoch, entry1, ... }    the new lease epoch, then up to ARGV[3] head entries

  The epoch is a fencing token: every lease increments it, so an older holder
  (a stalled or paused worker) is refused by ack-5 and by PostgreSQL.
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return { -1 }
end
if redis.call('HEXISTS', KEYS[3], ARGV[2]) == 1 then
  return { -2 }
end
local epoch = redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
local out = redis.call('LRANGE', KEYS[4], 0, tonumber(ARGV[3]) - 1)
table.insert(out, 1, epoch)
return out
