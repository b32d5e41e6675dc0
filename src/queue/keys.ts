/**
 * The one place where tradefleet's Redis key names are built.
 *
 * Every key of one namespace carries the same hash tag (`{<namespace>}`), and
 * BullMQ's own keys use the same tag through its `prefix`, so that the Lua
 * scripts, which touch the partition lists, the scaling signals and BullMQ's
 * job lock in one call, run unchanged on Redis Cluster.
 */

/** BullMQ queue name of the drain tokens. */
export const TOKEN_QUEUE = 'drain';
/** BullMQ job name of a drain token. */
export const TOKEN_JOB = 'drain';

const NAMESPACE_PATTERN = /^[a-z0-9][a-z0-9-]{0,39}$/;

export class QueueKeys {
  /** `tf:{<namespace>}`: the prefix of every key, and BullMQ's `prefix`. */
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
  /** Prefix of BullMQ's deduplication keys for the token queue (`...:de:<partitionKey>`). */
  readonly dedupPrefix: string;
  /** Prefix of BullMQ's job hashes for the token queue (`...:<jobId>`). */
  readonly jobPrefix: string;

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
    this.jobPrefix = `${this.base}:${TOKEN_QUEUE}:`;
    this.dedupPrefix = `${this.base}:${TOKEN_QUEUE}:de:`;
  }

  /** The list of one partition's unapplied trades, head first. */
  list(partitionKey: string): string {
    return this.listPrefix + partitionKey;
  }

  /** Marker of an applied trade, kept for the dedup window. */
  done(tradeId: string): string {
    return this.donePrefix + tradeId;
  }

  /** BullMQ's lock key of a token job (its value is the owning worker's token). */
  jobLock(jobId: string): string {
    return `${this.jobPrefix}${jobId}:lock`;
  }

  /** BullMQ's deduplication key of a partition's drain token. */
  dedup(partitionKey: string): string {
    return this.dedupPrefix + partitionKey;
  }

  /** The `prefix` option to give BullMQ so that its keys share the hash tag. */
  get bullPrefix(): string {
    return this.base;
  }
}
