import type { Redis } from 'ioredis';
import { encodeBody } from './codec';
import { QueueKeys } from './keys';
import { withScripts, type ScriptedRedis } from './scripts';

/** One trade to enqueue, already validated and serialized by the caller. */
export interface EnqueueItem {
  partitionKey: string;
  tradeId: string;
  /** Hash of the canonical payload: the same id with the same hash is an idempotent repeat. */
  payloadHash: string;
  /** The serialized trade the worker will receive. */
  body: string;
  /**
   * W3C trace context to hand to the worker (tracing on). Stored in the list
   * entry beside the body, never inside it: the payload hash and the body the
   * worker validates are the same with or without it.
   */
  traceparent?: string;
}

export type EnqueueStatus = 'queued' | 'duplicate' | 'conflict';

export interface EnqueueResult {
  status: EnqueueStatus;
  /** The assigned seq ('queued'), or the first seq of the earlier trade with this id. */
  seq: number;
}

/** The backlog limit refused the whole call; nothing was enqueued. */
export class BacklogFullError extends Error {
  readonly code = 'backlog_full';
  constructor(
    readonly backlog: number,
    readonly limit: number,
  ) {
    super(`backlog ${backlog} would pass the limit ${limit}; retry later`);
  }
}

export interface PartitionQueueOptions {
  /** Commands connection (the caller owns it and closes it). */
  redis: Redis;
  namespace: string;
  /** Refuse an enqueue that would take the backlog past this. 0 = unlimited. @default 0 */
  maxBacklog?: number;
}

const STATUS: Record<number, EnqueueStatus> = { 0: 'queued', 1: 'duplicate', 2: 'conflict' };

/**
 * The producer's side of the partitioned queue: one atomic Lua call per
 * enqueue (duplicate check, seq, RPUSH, scaling signals, and the partitions
 * that went from empty to non-empty made ready for the workers, with a
 * wake-up for an idle one).
 */
export class PartitionQueue {
  readonly keys: QueueKeys;
  private readonly redis: ScriptedRedis;
  private readonly maxBacklog: number;

  constructor(opts: PartitionQueueOptions) {
    this.keys = new QueueKeys(opts.namespace);
    this.redis = withScripts(opts.redis);
    this.maxBacklog = opts.maxBacklog ?? 0;
  }

  /**
   * Enqueues the items in order, all in one atomic step: either every item
   * gets its result or (BacklogFullError) nothing is enqueued. Items of one
   * partition get increasing seqs in the order given.
   */
  async enqueue(items: readonly EnqueueItem[]): Promise<EnqueueResult[]> {
    if (items.length === 0) return [];
    const k = this.keys;
    const args: (string | number)[] = [
      k.seqs,
      k.backlog,
      k.pending,
      k.halted,
      k.ready,
      k.wake,
      k.base + ':',
      this.maxBacklog,
    ];
    for (const it of items)
      args.push(it.partitionKey, it.tradeId, it.payloadHash, encodeBody(it.body, it.traceparent));
    const raw = await this.redis.tfEnqueue(...args);
    if (raw[0] === -1) throw new BacklogFullError(Number(raw[1]), this.maxBacklog);
    const results: EnqueueResult[] = [];
    for (let i = 0; i < items.length; i++) {
      results.push({ status: STATUS[raw[i * 3]!]!, seq: Number(raw[i * 3 + 1]) });
    }
    return results;
  }
}
