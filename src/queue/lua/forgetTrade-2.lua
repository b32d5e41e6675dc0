--[[
  Forget the done marker of a dead-lettered trade, so that a replay of the same
  tradeId is accepted by enqueue-6 instead of being answered as a duplicate
  (an operator's "replay", see src/dashboard/actions.ts).

  KEYS[1] backlog  hash  tradeId -> "payloadHash|seq|partitionKey" of unapplied trades
  KEYS[2] the trade's done marker ("<base>done:<tradeId>")

  ARGV[1] tradeId
  ARGV[2] partitionKey of the dead letter
  ARGV[3] seq of the dead letter

  Returns
     1  the marker of that delivery was deleted
     0  there was no marker (the dedup window has passed): nothing to forget
    -1  the tradeId is queued (unapplied): a replay now would be a duplicate
    -2  the marker belongs to another delivery (another seq or partition):
        kept, the replay must be refused
]]
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  return -1
end
local marker = redis.call('GET', KEYS[2])
if not marker then
  return 0
end
local seq, pk = string.match(marker, '^[^|]*|(%d+)|(.*)$')
if seq ~= ARGV[3] or pk ~= ARGV[2] then
  return -2
end
redis.call('DEL', KEYS[2])
return 1
