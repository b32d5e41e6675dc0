/**
 * The queue's entry format. A partition list holds `seq|enqueuedMs|tradeId|body`
 * strings, built by enqueue-4.lua; trade ids never contain `|` (the domain
 * forbids it), the body may.
 */
export interface QueuedItem {
  /** Position in the partition, 1, 2, 3, ... in the order Redis accepted the trades. */
  seq: number;
  /** When Redis accepted it (Redis server clock, ms since the epoch). */
  enqueuedAt: number;
  tradeId: string;
  /** The trade as the producer serialized it (canonical JSON). */
  body: string;
}

export function decodeEntry(entry: string): QueuedItem {
  const a = entry.indexOf('|');
  const b = entry.indexOf('|', a + 1);
  const c = entry.indexOf('|', b + 1);
  if (a < 0 || b < 0 || c < 0) throw new Error(`malformed queue entry: ${entry.slice(0, 80)}`);
  return {
    seq: Number(entry.slice(0, a)),
    enqueuedAt: Number(entry.slice(a + 1, b)),
    tradeId: entry.slice(b + 1, c),
    body: entry.slice(c + 1),
  };
}

/** Splits a backlog or done-marker value `payloadHash|seq|partitionKey`. */
export function decodeTradeIndex(value: string): { payloadHash: string; seq: number; partitionKey: string } {
  const a = value.indexOf('|');
  const b = value.indexOf('|', a + 1);
  return { payloadHash: value.slice(0, a), seq: Number(value.slice(a + 1, b)), partitionKey: value.slice(b + 1) };
}
