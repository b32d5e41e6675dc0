import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { decodeEntry, type QueuedItem } from './codec';
import { QueueKeys } from './keys';
import { withScripts, type ScriptedRedis } from './scripts';

/** What a drain holds while it has a partition's lease. */
interface Lease {
  readonly pk: string;
  readonly epoch: number;
}

/** What an ack (ackClaim) answered for one lease. */
interface AckReply {
  remaining: number;
  /** An operator halted the partition meanwhile: the lease is released. */
  halted: boolean;
  /** The next batch (raw entries), when one was asked for. */
  next: string[];
}

interface PendingAck {
  lease: Lease;
  items: readonly QueuedItem[];
  want: number;
  resolve: (r: AckReply) => void;
  reject: (e: unknown) => void;
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
  /** Failed attempts at this partition's head since its last ack (0 on the first try). */
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

/** The lease was lost (it expired and another worker took the partition): nothing was acked. */
export class LeaseLostError extends Error {
  constructor(
    readonly partitionKey: string,
    readonly why: 'epoch' | 'head',
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
  | { type: 'yielded'; partitionKey: string; remaining: number }
  /** The partition's previous lease expired in a worker's hands (it died or froze); this worker took it over. */
  | { type: 'stalled'; partitionKey: string };

export interface PartitionConsumerOptions {
  /**
   * Connection for the Lua scripts (the caller owns it). The consumer
   * duplicates it for its blocking wait on the wake-up list, and closes that copy.
   */
  redis: Redis;
  namespace: string;
  handler: (batch: Batch) => Promise<void>;
  /** Partitions leased (drained) at once by this process. @default 16 */
  concurrency?: number;
  /** Most partitions claimed in one round trip. @default half of concurrency (rounded up), at most 128 */
  claimSize?: number;
  /** Trades per batch (per PostgreSQL transaction). @default 64 */
  batchSize?: number;
  /** Trades one lease drains before yielding the partition to the back of the queue. @default 512 */
  budget?: number;
  /** Lease duration: how long a silent (dead, frozen) worker keeps its partitions. @default 5000 */
  lockDurationMs?: number;
  /**
   * The longest an idle worker waits before it looks again for expired
   * leases and ended retry backoffs (new trades wake it at once). @default 2500
   */
  stalledIntervalMs?: number;
  /** How long applied trade ids are remembered for duplicate detection. @default 86400 */
  dedupWindowSeconds?: number;
  /** Retry backoff of a failed batch: base * 2^(attempt-1), capped, with jitter. @default { baseMs: 100, maxMs: 30000 } */
  retry?: { baseMs: number; maxMs: number };
  onEvent?: (event: ConsumerEvent) => void;
  /** Redis errors of the claim loop, the acks and the lease heartbeat (each is retried). */
  onError?: (error: unknown) => void;
  /** Start claiming at once. @default true */
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
 * The worker's side of the partitioned queue. One loop claims up to
 * `claimSize` ready partitions per round trip (a lease with a fencing epoch
 * on each, plus its first batch); each leased partition is drained on its own:
 * the handler gets batches of consecutive head trades, and each batch is acked
 * only while the lease holds. The acks of every batch that finished in the
 * same tick go to Redis in one call (ackClaim), which also returns each
 * partition's next batch and claims partitions for the slots those acks freed,
 * so a worker under load makes about one round trip per group commit, not
 * several per partition. After `budget` trades a partition
 * goes to the back of the ready set (round-robin). A handler error keeps the
 * head in place and makes the partition claimable again after a capped
 * backoff; other partitions go on meanwhile. A worker that dies or freezes
 * stops renewing its leases; once they expire, the next claim by any worker
 * takes them over with a new epoch, which fences the old holder in Redis and
 * in PostgreSQL.
 */
export class PartitionConsumer {
  readonly keys: QueueKeys;
  /** This consumer's id (its own wake-up list). */
  readonly id = randomUUID();
  private readonly redis: ScriptedRedis;
  private readonly blocking: Redis;
  private readonly opts: Required<Omit<PartitionConsumerOptions, 'onEvent' | 'onError' | 'claimSize'>> &
    Pick<PartitionConsumerOptions, 'onEvent' | 'onError'> & { claimSize: number };
  private readonly held = new Map<string, Lease>();
  private readonly drains = new Set<Promise<void>>();
  private acks: PendingAck[] = [];
  private loop?: Promise<void>;
  /** The claim in flight with its hand-back when paused meanwhile (pause(true) waits for both). */
  private claiming?: Promise<unknown>;
  private closing?: Promise<void>;
  private stopping = false;
  private paused = false;
  private slotWaiter?: () => void;
  /** Free slots that claims in flight may fill: the claim loop's and the acks' (see flushAcks). */
  private claimRoom = 0;
  private heartbeat?: NodeJS.Timeout;
  private retryTimer?: { at: number; timer: NodeJS.Timeout };

  constructor(options: PartitionConsumerOptions) {
    const concurrency = options.concurrency ?? 16;
    this.opts = {
      batchSize: 64,
      budget: 512,
      lockDurationMs: 5000,
      stalledIntervalMs: 2500,
      dedupWindowSeconds: 86400,
      retry: { baseMs: 100, maxMs: 30000 },
      autorun: true,
      ...options,
      concurrency,
      claimSize: options.claimSize ?? Math.min(128, Math.max(1, Math.ceil(concurrency / 2))),
    };
    this.keys = new QueueKeys(this.opts.namespace);
    this.redis = withScripts(this.opts.redis);
    this.blocking = this.opts.redis.duplicate();
    // Reported through the claim loop's own error handling.
    this.blocking.on('error', () => undefined);
    if (this.opts.autorun) void this.run();
  }

  /** Partitions leased right now: the part of `concurrency` in use. */
  get activeDrains(): number {
    return this.held.size;
  }

  /** Starts claiming (when constructed with autorun: false). Resolves when the consumer is closed. */
  run(): Promise<void> {
    this.loop ??= this.claimLoop();
    if (!this.heartbeat) {
      this.heartbeat = setInterval(() => void this.renewLeases(), Math.max(50, this.opts.lockDurationMs / 3));
      this.heartbeat.unref();
    }
    return this.loop;
  }

  /** Resolves once both of the consumer's Redis connections answer. */
  async waitUntilReady(): Promise<void> {
    await Promise.all([this.redis.ping(), this.blocking.ping()]);
  }

  /**
   * Stops taking new partitions (the circuit breaker opened); the ones in hand
   * are drained on. With `settle`, resolves once none is in hand.
   */
  async pause(settle = false): Promise<void> {
    this.paused = true;
    // Out of the shared wait, so that a wake-up goes to a worker that can claim.
    this.nudge();
    if (!settle) return;
    await this.claiming?.catch(() => undefined);
    while (this.drains.size > 0) await Promise.allSettled([...this.drains]);
  }

  get isPaused(): boolean {
    return this.paused;
  }

  resume(): void {
    this.paused = false;
    this.slotWaiter?.();
  }

  private async claimLoop(): Promise<void> {
    const k = this.keys;
    const { concurrency, claimSize, stalledIntervalMs } = this.opts;
    let errorDelay = 0;
    while (!this.stopping) {
      if (this.paused || this.held.size >= concurrency) {
        await new Promise<void>((resolve) => (this.slotWaiter = resolve));
        this.slotWaiter = undefined;
        continue;
      }
      const room = Math.min(concurrency - this.held.size - this.claimRoom, claimSize);
      if (room <= 0) {
        // The free slots are spoken for by an ack's claim in flight.
        await new Promise<void>((resolve) => (this.slotWaiter = resolve));
        this.slotWaiter = undefined;
        continue;
      }
      let wait: number;
      try {
        this.claimRoom += room;
        const claim = (async () => {
          let waitMs: number;
          let claims: string[][];
          try {
            [waitMs, , claims] = await this.redis.tfAckClaim(...this.ackClaimArgs(room, room));
          } finally {
            this.claimRoom -= room;
          }
          if (!this.paused && !this.stopping) return { waitMs, claims };
          // Paused or closed while the claim was in flight: hand them straight back.
          await Promise.all(claims.map((c) => this.handBack(c)));
          return undefined;
        })();
        this.claiming = claim;
        const got = await claim;
        errorDelay = 0;
        if (!got) continue;
        const { waitMs, claims } = got;
        for (const c of claims) this.start(c);
        if (claims.length === room) continue;
        // Nothing more is ready now: wait for a wake-up (new trades, a partition
        // yielded), or until a backoff ends or a lease expires.
        wait = claims.length > 0 || waitMs < 0 ? stalledIntervalMs : Math.min(stalledIntervalMs, waitMs + 1);
      } catch (err) {
        if (this.stopping) break;
        this.opts.onError?.(err);
        errorDelay = Math.min(5000, Math.max(100, errorDelay * 2));
        wait = errorDelay;
      }
      if (this.stopping) break;
      if (wait <= 0) continue;
      try {
        const got = await this.blocking.blpop(k.wake, k.wakeOf(this.id), wait / 1000);
        // A wake-up meant for any worker, taken by this one as it paused or
        // closed: pass it on to one that can claim.
        if (got && got[0] === k.wake && (this.paused || this.stopping)) await this.redis.rpush(k.wake, 1);
      } catch (err) {
        if (this.stopping) break;
        this.opts.onError?.(err);
        await new Promise((r) => setTimeout(r, Math.min(wait, 1000)));
      }
    }
  }

  /** Gives back a partition claimed but not started, without counting an attempt. */
  private async handBack(claim: string[]): Promise<void> {
    const k = this.keys;
    const [pk, epoch] = claim;
    try {
      await this.redis.tfRelease(k.epochs, k.leases, k.ready, k.attempts, k.halted, pk!, epoch!, 0, 0);
    } catch (err) {
      // Its lease expires and another worker takes it over.
      this.opts.onError?.(err);
    }
  }

  /** Drains one claimed partition: [pk, epoch, attempt, stalled, entry...]. */
  private start(claim: string[]): void {
    const [pk, epoch, attempt, stalled, ...entries] = claim as [string, string, string, string, ...string[]];
    const lease: Lease = { pk, epoch: Number(epoch) };
    this.held.set(pk, lease);
    if (stalled === '1' || Number(stalled) === 1) this.opts.onEvent?.({ type: 'stalled', partitionKey: pk });
    const p = this.drain(lease, entries, Number(attempt)).finally(() => {
      // This consumer may have taken the partition over from itself (its own
      // lease expired while it was frozen): keep the newer lease's entry.
      if (this.held.get(pk) === lease) this.held.delete(pk);
      this.drains.delete(p);
      this.slotWaiter?.();
    });
    this.drains.add(p);
  }

  private async drain(lease: Lease, first: string[], firstAttempt: number): Promise<void> {
    const { pk, epoch } = lease;
    const { batchSize, budget } = this.opts;
    let entries = first;
    let attempt = firstAttempt;
    let done = 0;
    try {
      while (entries.length > 0) {
        const items = entries.map(decodeEntry);
        try {
          await this.opts.handler({ partitionKey: pk, epoch, items, attempt });
        } catch (err) {
          if (err instanceof HaltPartitionError) return await this.halt(lease, items, err);
          return await this.fail(lease, err);
        }
        attempt = 0;
        done += items.length;
        const want = this.stopping ? 0 : done < budget ? Math.min(batchSize, budget - done) : 0;
        const r = await this.ack(lease, items, want);
        if (r.halted) return;
        entries = r.next;
        if (entries.length === 0 && r.remaining > 0 && want === 0 && !this.stopping) {
          this.opts.onEvent?.({ type: 'yielded', partitionKey: pk, remaining: r.remaining });
        }
      }
    } catch (err) {
      if (err instanceof LeaseLostError) return;
      // Redis failed under an ack or a halt: whatever was committed is fenced
      // by seq in PostgreSQL; hand the partition back (or let the lease expire).
      this.opts.onError?.(err);
      await this.fail(lease, err).catch(() => undefined);
    }
  }

  /** The handler halted the partition: ack the committed prefix, then halt it in Redis. */
  private async halt(lease: Lease, items: readonly QueuedItem[], err: HaltPartitionError): Promise<void> {
    // The handler committed everything before reason.seq (see
    // HaltPartitionError): ack that prefix, keeping the lease, so the halted
    // head is the trade that stopped the partition and an operator acts on it.
    const stop = err.reason.seq;
    const prefix = stop === undefined ? [] : items.filter((i) => i.seq < stop);
    if (prefix.length > 0) await this.ack(lease, prefix, -1);
    const r = await this.redis.tfHalt(
      ...this.keys.haltKeys,
      lease.pk,
      lease.epoch,
      JSON.stringify(err.reason),
    );
    if (r < 0) throw this.leaseLost(lease.pk, 'epoch');
    this.opts.onEvent?.({ type: 'halted', partitionKey: lease.pk, reason: err.reason });
  }

  /** A batch failed: give the lease back; the partition is claimable again after a backoff. */
  private async fail(lease: Lease, error: unknown): Promise<void> {
    const k = this.keys;
    const attempts = Number(await this.redis.hget(k.attempts, lease.pk)) + 1;
    const { baseMs, maxMs } = this.opts.retry;
    const delay = this.stopping ? 0 : cappedBackoff(attempts, baseMs, maxMs);
    const r = await this.redis.tfRelease(
      k.epochs,
      k.leases,
      k.ready,
      k.attempts,
      k.halted,
      lease.pk,
      lease.epoch,
      delay,
      this.stopping ? 0 : 1,
    );
    if (r < 0) {
      this.leaseLost(lease.pk, 'epoch');
      return;
    }
    this.opts.onEvent?.({
      type: 'failed',
      partitionKey: lease.pk,
      attempt: r,
      error: error instanceof Error ? error : new Error(String(error)),
    });
    if (!this.stopping) this.wakeAt(Date.now() + delay);
  }

  /** Makes this consumer's claim loop look again at `at` (a retry it scheduled itself). */
  private wakeAt(at: number): void {
    if (this.retryTimer && this.retryTimer.at <= at) return;
    if (this.retryTimer) clearTimeout(this.retryTimer.timer);
    const timer = setTimeout(
      () => {
        this.retryTimer = undefined;
        this.nudge();
      },
      Math.max(0, at - Date.now()),
    );
    timer.unref();
    this.retryTimer = { at, timer };
  }

  /** Ends this consumer's blocking wait, if it is in one. */
  private nudge(): void {
    const key = this.keys.wakeOf(this.id);
    // The expiry cleans up after a worker that died with a wake-up pending.
    this.redis
      .multi()
      .rpush(key, 1)
      .pexpire(key, 60_000)
      .exec()
      .catch(() => undefined);
  }

  /**
   * Acks `items` (the head of the partition, committed by the handler) while
   * the lease holds, asking for the next `want` entries (0: release; -1: keep
   * the lease, nothing more). Every ack asked for in the same tick goes to
   * Redis in one call.
   * @throws LeaseLostError when the epoch or the head is not the lease's
   */
  private ack(lease: Lease, items: readonly QueuedItem[], want: number): Promise<AckReply> {
    return new Promise((resolve, reject) => {
      this.acks.push({ lease, items, want, resolve, reject });
      if (this.acks.length === 1) setImmediate(() => void this.flushAcks());
    });
  }

  /** Arguments of tfAckClaim up to its acks: claim up to `most`, with `free` slots free besides the acks'. */
  private ackClaimArgs(free: number, most: number): (string | number)[] {
    const k = this.keys;
    const { dedupWindowSeconds, lockDurationMs, batchSize } = this.opts;
    return [
      k.epochs,
      k.backlog,
      k.pending,
      k.halted,
      k.ready,
      k.leases,
      k.attempts,
      k.wake,
      k.stalls,
      k.base + ':',
      dedupWindowSeconds,
      lockDurationMs,
      batchSize,
      free,
      most,
    ];
  }

  /**
   * Sends the acks of this tick in one call, which also claims partitions
   * for the slots they free (and any free besides), so that a worker under
   * load makes one Redis round trip per group of batches.
   */
  private async flushAcks(): Promise<void> {
    const batch = this.acks;
    this.acks = [];
    const claiming = !this.paused && !this.stopping;
    const free = claiming ? Math.max(0, this.opts.concurrency - this.held.size - this.claimRoom) : 0;
    const args = this.ackClaimArgs(free, claiming ? this.opts.claimSize : 0);
    for (const a of batch) {
      args.push(
        a.lease.pk,
        a.lease.epoch,
        a.items.length,
        a.items[0]!.seq,
        a.items[a.items.length - 1]!.seq,
        a.want,
      );
    }
    let replies: (number | string)[][];
    let claims: string[][];
    this.claimRoom += free;
    try {
      [, replies, claims] = await this.redis.tfAckClaim(...args);
    } catch (err) {
      for (const a of batch) a.reject(err);
      return;
    } finally {
      this.claimRoom -= free;
      if (free > 0) this.slotWaiter?.();
    }
    batch.forEach((a, i) => {
      const r = replies[i]!;
      if (r[0] === -2 || r[0] === -3) {
        a.reject(this.leaseLost(a.lease.pk, r[0] === -2 ? 'epoch' : 'head'));
        return;
      }
      this.opts.onEvent?.({
        type: 'acked',
        partitionKey: a.lease.pk,
        epoch: a.lease.epoch,
        count: a.items.length,
        firstSeq: a.items[0]!.seq,
        lastSeq: a.items[a.items.length - 1]!.seq,
      });
      a.resolve({ remaining: Number(r[0]), halted: Number(r[1]) === 1, next: r.slice(2) as string[] });
    });
    if (claims.length === 0) return;
    if (!this.paused && !this.stopping) {
      for (const c of claims) this.start(c);
      return;
    }
    // Paused or closing meanwhile: hand them straight back (pause(true) and close() wait for it).
    const back: Promise<void> = Promise.all(claims.map((c) => this.handBack(c))).then(
      () => undefined,
      () => undefined,
    );
    this.drains.add(back);
    void back.finally(() => this.drains.delete(back));
  }

  /** The heartbeat: extends every lease in hand, in one call. */
  private async renewLeases(): Promise<void> {
    if (this.held.size === 0) return;
    const args: (string | number)[] = [this.keys.epochs, this.keys.leases, this.opts.lockDurationMs];
    for (const l of this.held.values()) args.push(l.pk, l.epoch);
    try {
      await this.redis.tfExtend(...args);
    } catch (err) {
      this.opts.onError?.(err);
    }
  }

  private leaseLost(pk: string, why: LeaseLostError['why']): LeaseLostError {
    this.opts.onEvent?.({ type: 'lease-lost', partitionKey: pk, why });
    return new LeaseLostError(pk, why);
  }

  /**
   * Stops claiming and waits for the batches in hand (idempotent): each
   * partition is handed back at its next batch boundary, made ready for the
   * other workers. `force` does not wait: the leases in hand expire and are
   * taken over.
   */
  close(force = false): Promise<void> {
    this.closing ??= (async () => {
      this.stopping = true;
      this.slotWaiter?.();
      if (this.retryTimer) clearTimeout(this.retryTimer.timer);
      if (!force) {
        // The heartbeat goes on until the batches in hand are acked: a batch
        // that outlasts the lease must not be taken over and run twice.
        this.nudge();
        await this.loop;
        while (this.drains.size > 0) await Promise.allSettled([...this.drains]);
      }
      if (this.heartbeat) clearInterval(this.heartbeat);
      this.blocking.disconnect();
      await this.redis.del(this.keys.wakeOf(this.id)).catch(() => undefined);
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
