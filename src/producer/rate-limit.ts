/**
 * Per-client rate limiting of the producer API: one token bucket per client,
 * held in this process (each producer replica limits on its own, so a client
 * spread over N replicas by the Service may reach N times the limit).
 *
 * The unit is a trade: a single trade costs 1, a batch its number of trades,
 * any other /v1 request 1. A request is admitted when its client's bucket
 * holds at least one unit, and that unit is taken before the body is read, so
 * an exhausted client is refused without parsing anything. Once a batch's
 * size is known its other trades are taken too, and the bucket may go below
 * zero: the client then waits until it refills (Retry-After says how long).
 * That way a batch larger than the burst is still accepted, and the long-run
 * rate is still the configured one.
 *
 * Memory is bounded: at most `maxClients` buckets, the least recently used one
 * dropped first. A dropped bucket was idle longest; if it was in debt, its
 * client starts afresh, which the cap makes a rare and bounded gift.
 */

export interface RateLimiterOptions {
  /** Units (trades) per second per client; must be positive. */
  readonly perSecond: number;
  /** The bucket's size; must be positive. */
  readonly burst: number;
  /** Buckets kept at most. @default 10000 */
  readonly maxClients?: number;
  /** @default Date.now */
  readonly now?: () => number;
}

/** The outcome of {@link RateLimiter.admit}. */
export type Admission = { ok: true } | { ok: false; retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date (ms). */
  at: number;
}

export const DEFAULT_MAX_CLIENTS = 10_000;

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;
  private readonly maxClients: number;
  private readonly now: () => number;

  constructor(private readonly options: RateLimiterOptions) {
    if (!(options.perSecond > 0) || !(options.burst > 0)) {
      throw new RangeError('RateLimiter needs a positive perSecond and burst');
    }
    this.perMs = options.perSecond / 1000;
    this.maxClients = options.maxClients ?? DEFAULT_MAX_CLIENTS;
    this.now = options.now ?? Date.now;
  }

  /** Clients currently tracked (at most maxClients). */
  get size(): number {
    return this.buckets.size;
  }

  /** The client's bucket, refilled to now and marked most recently used. */
  private bucket(key: string): Bucket {
    const now = this.now();
    let b = this.buckets.get(key);
    if (b === undefined) {
      b = { tokens: this.options.burst, at: now };
      if (this.buckets.size >= this.maxClients) {
        const oldest = this.buckets.keys().next().value;
        if (oldest !== undefined) this.buckets.delete(oldest);
      }
    } else {
      b.tokens = Math.min(this.options.burst, b.tokens + (now - b.at) * this.perMs);
      b.at = now;
      // Map keeps insertion order: re-inserting makes it the most recently used.
      this.buckets.delete(key);
    }
    this.buckets.set(key, b);
    return b;
  }

  /** Admits one request of `key` (taking one unit) or says how long to wait. */
  admit(key: string): Admission {
    const b = this.bucket(key);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - b.tokens) / this.options.perSecond)) };
  }

  /** Takes `units` more from an admitted client (the rest of a batch); the bucket may go below zero. */
  charge(key: string, units: number): void {
    if (units <= 0) return;
    this.bucket(key).tokens -= units;
  }
}
