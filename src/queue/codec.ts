/**
 * The queue's entry format. A partition list holds `seq|enqueuedMs|tradeId|body`
 * strings, built by enqueue-6.lua; trade ids never contain `|` (the domain
 * forbids it), the body may.
 *
 * A trade enqueued with trace context carries it between the tradeId and the
 * body: `seq|enqueuedMs|tradeId|~<traceparent>|body`. The body (the canonical
 * trade JSON the payload hash is computed over) is unchanged, the Lua scripts
 * see only the first three fields, and an entry without the `~` segment (every
 * entry written before tracing existed) decodes as before.
 */
export interface QueuedItem {
  /** Position in the partition, 1, 2, 3, ... in the order Redis accepted the trades. */
  seq: number;
  /** When Redis accepted it (Redis server clock, ms since the epoch). */
  enqueuedAt: number;
  tradeId: string;
  /** The trade as the producer serialized it (canonical JSON). */
  body: string;
  /** W3C trace context of the producer's span, when the trade was enqueued with tracing on. */
  traceparent?: string;
}

/** A W3C `traceparent` header value (version 00). */
export const TRACEPARENT_PATTERN = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/**
 * The body argument the enqueue script stores after the tradeId: the body,
 * prefixed by `~<traceparent>|` when there is a valid trace context.
 */
export function encodeBody(body: string, traceparent?: string): string {
  return traceparent !== undefined && TRACEPARENT_PATTERN.test(traceparent)
    ? `~${traceparent}|${body}`
    : body;
}

export function decodeEntry(entry: string): QueuedItem {
  const a = entry.indexOf('|');
  const b = entry.indexOf('|', a + 1);
  const c = entry.indexOf('|', b + 1);
  if (a < 0 || b < 0 || c < 0) throw new Error(`malformed queue entry: ${entry.slice(0, 80)}`);
  const item: QueuedItem = {
    seq: Number(entry.slice(0, a)),
    enqueuedAt: Number(entry.slice(a + 1, b)),
    tradeId: entry.slice(b + 1, c),
    body: entry.slice(c + 1),
  };
  if (entry.charCodeAt(c + 1) === 0x7e /* ~ */) {
    const d = entry.indexOf('|', c + 1);
    const tp = d < 0 ? '' : entry.slice(c + 2, d);
    // Only a well-formed traceparent is taken out; anything else stays body
    // (and a hand-pushed body starting with "~" is refused by the worker as invalid).
    if (TRACEPARENT_PATTERN.test(tp)) {
      item.traceparent = tp;
      item.body = entry.slice(d + 1);
    }
  }
  return item;
}

/** Splits a backlog or done-marker value `payloadHash|seq|partitionKey`. */
export function decodeTradeIndex(value: string): { payloadHash: string; seq: number; partitionKey: string } {
  const a = value.indexOf('|');
  const b = value.indexOf('|', a + 1);
  return {
    payloadHash: value.slice(0, a),
    seq: Number(value.slice(a + 1, b)),
    partitionKey: value.slice(b + 1),
  };
}
