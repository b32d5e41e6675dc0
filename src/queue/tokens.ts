import { Queue, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { QueueKeys, TOKEN_JOB, TOKEN_QUEUE } from './keys';

/** Name of the custom BullMQ backoff the workers register (see consumer.ts). */
export const TOKEN_BACKOFF = 'tf-capped';

/**
 * A drain token's job options. The deduplication id is the partition key, so
 * adding a token is idempotent; keepLastIfActive keeps one added while the
 * partition's token is active and re-creates it when that one finishes, which
 * is how a worker yields a partition (round-robin) without a second token ever
 * running beside the first. Attempts are generous because a failed attempt is
 * a partition waiting (its head stays put), not a trade lost.
 */
export function tokenJobOptions(partitionKey: string, retryBaseMs: number): JobsOptions {
  return {
    deduplication: { id: partitionKey, keepLastIfActive: true },
    removeOnComplete: true,
    removeOnFail: { count: 1000 },
    attempts: 10_000,
    backoff: { type: TOKEN_BACKOFF, delay: retryBaseMs },
  };
}

/** The BullMQ queue of drain tokens, bound to a namespace. Receives its connection. */
export class TokenQueue {
  readonly queue: Queue;

  constructor(
    connection: Redis,
    readonly keys: QueueKeys,
    private readonly retryBaseMs = 100,
  ) {
    this.queue = new Queue(TOKEN_QUEUE, { connection, prefix: keys.bullPrefix });
  }

  /** Adds the drain token of each partition (deduplicated). */
  async arm(partitionKeys: Iterable<string>): Promise<void> {
    const jobs = [...new Set(partitionKeys)].map((pk) => ({
      name: TOKEN_JOB,
      data: { pk },
      opts: tokenJobOptions(pk, this.retryBaseMs),
    }));
    if (jobs.length === 0) return;
    if (jobs.length === 1) await this.queue.add(jobs[0]!.name, jobs[0]!.data, jobs[0]!.opts);
    else await this.queue.addBulk(jobs);
  }

  close(): Promise<void> {
    return this.queue.close();
  }
}
