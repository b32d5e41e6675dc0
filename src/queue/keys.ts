/**
 * The one place where tradefleet's Redis key names are built.
 *
 * Every key of one namespace carries the same hash tag (`{<namespace>}`), so
 * that the Lua scripts, which touch the partition lists, the leases and the
 * scaling signals in one call, run unchanged on Redis Cluster.
 */

const NAMESPACE_PATTERN = /^[a-z0-9][a-z0-9-]{0,39}$/;

export class QueueKeys {
  /** `tf:{<namespace>}`: the prefix of every key. */
  readonly base: string;
  /** Hash partitionKey -> last assigned seq. Never shrinks: seq must survive an empty list. */
  readonly seqs: string;
  /**
   * Hash tradeId -> `payloadHash|seq|partitionKey` of every unapplied trade.
   * Its HLEN is the backlog signal KEDA reads; it is also the duplicate check
   * for queued trades.
   */
  readonly backlog: string;
  /**
   * Sorted set of partitions with at least one unapplied trade (in flight
   * included, halted excluded), scored by the enqueue time (ms) of the head.
   */
  readonly pending: string;
  /** Hash partitionKey -> JSON reason of every halted partition. */
  readonly halted: string;
  /** Hash partitionKey -> lease epoch (the fencing token), incremented by every lease. */
  readonly epochs: string;
  /** Prefix of the per-trade keys that remember applied trades for the dedup window. */
  readonly donePrefix: string;
  /** Prefix of the per-partition lists. */
  readonly listPrefix: string;
  /** Mutual exclusion of the reconciler across workers. */
  readonly reconcilerLock: string;
  /**
   * Sorted set of the partitions a worker may claim (trades queued, no lease,
   * not halted), scored by the ms from which they may be: the time they became
   * ready (FIFO, round-robin), or the end of a retry backoff.
   */
  readonly ready: string;
  /** Sorted set partitionKey -> expiry (ms) of every lease held by a worker. */
  readonly leases: string;
  /** Hash partitionKey -> failed attempts since the partition's last ack (retry backoff). */
  readonly attempts: string;
  /** Hash partitionKey -> leases that expired in a worker's hands (died, froze). */
  readonly stalls: string;
  /** Bounded list of wake-up signals idle workers block on (BLPOP). */
  readonly wake: string;

  constructor(readonly namespace: string) {
    if (!NAMESPACE_PATTERN.test(namespace)) {
      throw new Error(
        `queue namespace must match ${NAMESPACE_PATTERN} (lowercase letters, digits and dashes, at most 40); got ${JSON.stringify(namespace)}`,
      );
    }
    this.base = `tf:{${namespace}}`;
    this.seqs = `${this.base}:seqs`;
    this.backlog = `${this.base}:backlog`;
    this.pending = `${this.base}:pending`;
    this.halted = `${this.base}:halted`;
    this.epochs = `${this.base}:epochs`;
    this.donePrefix = `${this.base}:done:`;
    this.listPrefix = `${this.base}:p:`;
    this.reconcilerLock = `${this.base}:reconciler`;
    this.ready = `${this.base}:ready`;
    this.leases = `${this.base}:leases`;
    this.attempts = `${this.base}:attempts`;
    this.stalls = `${this.base}:stalls`;
    this.wake = `${this.base}:wake`;
  }

  /** The list of one partition's unapplied trades, head first. */
  list(partitionKey: string): string {
    return this.listPrefix + partitionKey;
  }

  /** Marker of an applied trade, kept for the dedup window. */
  done(tradeId: string): string {
    return this.donePrefix + tradeId;
  }

  /** KEYS of the halt-5 script, in its order (a worker's halt and an operator's). */
  get haltKeys(): [string, string, string, string, string] {
    return [this.epochs, this.halted, this.pending, this.ready, this.leases];
  }

  /** A worker's own wake-up list (its close and its retry timers push to it). */
  wakeOf(workerId: string): string {
    return `${this.wake}:${workerId}`;
  }
}
