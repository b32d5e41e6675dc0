import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { decodeEntry, type QueuedItem } from './codec';
import { QueueKeys, TOKEN_QUEUE } from './keys';
import { withScripts, type ScriptedRedis } from './scripts';
import { TokenQueue } from './tokens';

/** What a drain holds while it has a partition's lease. */
interface Lease {
  readonly pk: string;
  readonly epoch: number;
  readonly lockKey: string;
  readonly listKey: string;
  /** The worker's BullMQ lock token. */
  readonly token: string;
}

/** A run of consecutive trades at the head of one partition, handed to the handler. */
export interface Batch {
  partitionKey: string;
  /**
   * The lease's fencing token: strictly greater than that of every earlier
   * lease of this partition. The handler's PostgreSQL transaction must refuse
   * to commit when the stored epoch is greater (a newer owner wrote).
   */
  epoch: number;
  /** Head first; seqs are consecutive. */
  items: QueuedItem[];
  /** Failed attempts of this partition's token so far (0 on the first try). */
  attempt: number;
}

/**
 * Handler verdict that stops the partition (the halt policy): its trades stay
 * queued. `reason.seq` is the first trade of the batch NOT consumed: the
 * handler promises that every earlier trade of the batch is committed
 * (applied, dead-lettered, or found already applied), and the consumer acks
 * them before halting. Without `seq`, nothing of the batch is acked.
 */
export class HaltPartitionError extends Error {
  constructor(readonly reason: { code: string; message: string; tradeId?: string; seq?: number }) {
    super(`halt partition: ${reason.code}: ${reason.message}`);
    this.name = 'HaltPartitionError';
  }
}

/** The lease was lost (BullMQ lock expired, another lease taken): nothing was acked. */
export class LeaseLostError extends Error {
  constructor(
    readonly partitionKey: string,
    readonly why: 'lock' | 'epoch' | 'head',
  ) {
    super(`lease of partition ${partitionKey} lost (${why}); the batch was not acked`);
    this.name = 'LeaseLostError';
  }
}

export type ConsumerEvent =
  | { type: 'acked'; partitionKey: string; epoch: number; count: number; firstSeq: number; lastSeq: number }
  | { type: 'lease-lost'; partitionKey: string; why: string }
  | { type: 'halted'; partitionKey: string; reason: HaltPartitionError['reason'] }
  | { type: 'failed'; partitionKey: string; attempt: number; error: Error }
  | { type: 'yielded'; partitionKey: string; remaining: number };

export interface PartitionConsumerOptions {
  /** Connection for the Lua scripts and the re-arm queue (the caller owns it). */
  redis: Redis;
  /** Connection for BullMQ's Worker; must have maxRetriesPerRequest: null. May be the same as redis. */
  connection: Redis;
  namespace: string;
  handler: (batch: Batch) => Promise<void>;
  /** Partitions drained at once by this process. @default 16 */
  concurrency?: number;
  /** Trades per batch (per PostgreSQL transaction). @default 64 */
  batchSize?: number;
  /** Trades one token drains before yielding the partition to the back of the queue. @default 512 */
  budget?: number;
  /** BullMQ lock duration: how long a silent worker keeps its partitions. @default 5000 */
  lockDurationMs?: number;
  /** How often stalled tokens (expired locks) are looked for. @default 2500 */
  stalledIntervalMs?: number;
  /** How long applied trade ids are remembered for duplicate detection. @default 86400 */
  dedupWindowSeconds?: number;
  /** Token retry backoff: base * 2^(attempt-1), capped, with jitter. @default { baseMs: 100, maxMs: 30000 } */
  retry?: { baseMs: number; maxMs: number };
  onEvent?: (event: ConsumerEvent) => void;
  /** Start fetching at once. @default true */
  autorun?: boolean;
}

/** Capped exponential backoff with +-20% jitter, so that failing partitions do not retry in lockstep. */
export function cappedBackoff(
  attemptsMade: number,
  baseMs: number,
  maxMs: number,
  rand = Math.random,
): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, Math.min(attemptsMade - 1, 30)));
  return Math.round(exp * (0.8 + 0.4 * rand()));
}

/**
 * The worker's side of the partitioned queue: a BullMQ Worker whose jobs are
 * drain tokens. For the token of partition P it takes a lease (fencing epoch),
 * hands the handler batches of consecutive head trades, acks each batch only
 * while the lease holds, and re-arms P after `budget` trades so that partitions
 * take turns. A handler error keeps the head in place and retries the token
 * with capped backoff; other partitions go on meanwhile.
 */
export class PartitionConsumer {
  readonly keys: QueueKeys;
  readonly worker: Worker;
  private readonly redis: ScriptedRedis;
  private readonly tokens: TokenQueue;
  private readonly opts: Required<Omit<PartitionConsumerOptions, 'onEvent'>> &
    Pick<PartitionConsumerOptions, 'onEvent'>;
  private closing?: Promise<void>;
  private stopping = false;
  private active = 0;

  constructor(options: PartitionConsumerOptions) {
    this.opts = {
      concurrency: 16,
      batchSize: 64,
      budget: 512,
      lockDurationMs: 5000,
      stalledIntervalMs: 2500,
      dedupWindowSeconds: 86400,
      retry: { baseMs: 100, maxMs: 30000 },
      autorun: true,
      ...options,
    };
    this.keys = new QueueKeys(this.opts.namespace);
    this.redis = withScripts(this.opts.redis);
    this.tokens = new TokenQueue(this.opts.redis, this.keys, this.opts.retry.baseMs);
    const { baseMs, maxMs } = this.opts.retry;
    this.worker = new Worker(TOKEN_QUEUE, (job, token) => this.counted(job, token), {
      connection: this.opts.connection,
      prefix: this.keys.bullPrefix,
      concurrency: this.opts.concurrency,
      lockDuration: this.opts.lockDurationMs,
      stalledInterval: this.opts.stalledIntervalMs,
      // A stalled token is a partition whose worker died; it must come back, not fail.
      maxStalledCount: 1000,
      autorun: this.opts.autorun,
      settings: {
        backoffStrategy: (attemptsMade) => cappedBackoff(attemptsMade, baseMs, maxMs),
      },
    });
    this.worker.on('failed', (job, error) => {
      if (!job) return;
      this.opts.onEvent?.({ type: 'failed', partitionKey: job.data.pk, attempt: job.attemptsMade, error });
    });
    // BullMQ reports lock renewal and connection errors here; without a
    // listener they would crash the process. They surface through 'failed' and
    // stalled-token recovery, so logging them is the caller's business.
    this.worker.on('error', () => undefined);
  }

  /** Drain tokens being processed right now: the part of `concurrency` in use. */
  get activeDrains(): number {
    return this.active;
  }

  /** Starts fetching tokens (when constructed with autorun: false). */
  run(): Promise<void> {
    return this.worker.run();
  }

  private async counted(job: Job<{ pk: string }>, token: string | undefined): Promise<string> {
    this.active++;
    try {
      return await this.drain(job, token);
    } finally {
      this.active--;
    }
  }

  private async drain(job: Job<{ pk: string }>, token: string | undefined): Promise<string> {
    const pk = job.data.pk;
    const k = this.keys;
    const lockKey = k.jobLock(job.id!);
    const listKey = k.list(pk);
    const { batchSize, budget } = this.opts;
    const first = await this.redis.tfAcquire(
      lockKey,
      k.epochs,
      k.halted,
      listKey,
      token ?? '',
      pk,
      batchSize,
    );
    if (first[0] === -1) throw this.leaseLost(pk, 'lock');
    if (first[0] === -2) return 'halted';
    const epoch = Number(first[0]);
    const lease: Lease = { pk, epoch, lockKey, listKey, token: token ?? '' };
    let entries = first.slice(1) as string[];
    let done = 0;
    let remaining = entries.length;
    while (entries.length > 0) {
      const items = entries.map(decodeEntry);
      try {
        await this.opts.handler({ partitionKey: pk, epoch, items, attempt: job.attemptsMade });
      } catch (err) {
        if (err instanceof HaltPartitionError) {
          // The handler committed everything before reason.seq (see
          // HaltPartitionError): ack that prefix, so the halted head is the
          // trade that stopped the partition and an operator acts on it.
          const prefix = err.reason.seq === undefined ? [] : items.filter((i) => i.seq < err.reason.seq!);
          if (prefix.length > 0) await this.ack(lease, prefix, 0);
          const r = await this.redis.tfHalt(
            lockKey,
            k.epochs,
            k.halted,
            k.pending,
            token ?? '',
            pk,
            epoch,
            JSON.stringify(err.reason),
          );
          if (r < 0) throw this.leaseLost(pk, r === -1 ? 'lock' : 'epoch');
          this.opts.onEvent?.({ type: 'halted', partitionKey: pk, reason: err.reason });
          return 'halted';
        }
        throw err;
      }
      done += items.length;
      const next = done < budget ? Math.min(batchSize, budget - done) : 0;
      const r = await this.ack(lease, items, next);
      remaining = Number(r[0]);
      if (r[1] === 1) return 'halted';
      // Shutting down: hand the partition back at a batch boundary.
      entries = this.stopping ? [] : (r.slice(2) as string[]);
    }
    if (remaining > 0) {
      // Budget spent: go to the back of the line. Stored by keepLastIfActive,
      // re-created by BullMQ when this token completes.
      await this.tokens.arm([pk]);
      this.opts.onEvent?.({ type: 'yielded', partitionKey: pk, remaining });
    }
    return `drained ${done}`;
  }

  /**
   * Acks `items` (the head of the partition, committed by the handler) while
   * the lease holds, asking for the `next` batch in the same round trip.
   * @throws LeaseLostError when the lock, the epoch or the head is not the lease's
   */
  private async ack(lease: Lease, items: readonly QueuedItem[], next: number): Promise<(number | string)[]> {
    const k = this.keys;
    const firstSeq = items[0]!.seq;
    const lastSeq = items[items.length - 1]!.seq;
    const r = await this.redis.tfAck(
      lease.listKey,
      lease.lockKey,
      k.epochs,
      k.backlog,
      k.pending,
      k.halted,
      lease.token,
      lease.pk,
      lease.epoch,
      items.length,
      firstSeq,
      lastSeq,
      k.base + ':',
      this.opts.dedupWindowSeconds,
      next,
    );
    if (r[0] === -1 || r[0] === -2 || r[0] === -3) {
      throw this.leaseLost(lease.pk, r[0] === -1 ? 'lock' : r[0] === -2 ? 'epoch' : 'head');
    }
    this.opts.onEvent?.({
      type: 'acked',
      partitionKey: lease.pk,
      epoch: lease.epoch,
      count: items.length,
      firstSeq,
      lastSeq,
    });
    return r;
  }

  private leaseLost(pk: string, why: LeaseLostError['why']): LeaseLostError {
    this.opts.onEvent?.({ type: 'lease-lost', partitionKey: pk, why });
    return new LeaseLostError(pk, why);
  }

  /**
   * Stops taking tokens and waits for the batches in hand (idempotent). A
   * token whose drain is cut short keeps its head: the next owner resumes it.
   */
  close(force = false): Promise<void> {
    this.closing ??= (async () => {
      this.stopping = true;
      await this.worker.close(force);
      await this.tokens.close();
    })();
    return this.closing;
  }
}

/**
 * Raises a partition's lease epoch in Redis to `storedEpoch` (never past it),
 * for a worker whose commit PostgreSQL fenced with a newer stored epoch than
 * Redis now hands out: after Redis lost its epochs, every new lease would be
 * fenced forever. Harmless in the ordinary zombie case (Redis is already at or
 * beyond the stored epoch). Returns true when the counter moved.
 */
export async function raiseEpoch(
  redis: Redis,
  namespace: string,
  partitionKey: string,
  storedEpoch: number,
): Promise<boolean> {
  const keys = new QueueKeys(namespace);
  return (await withScripts(redis).tfRaiseEpoch(keys.epochs, partitionKey, storedEpoch)) === 1;
}
