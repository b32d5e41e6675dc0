import type { Redis } from 'ioredis';
import { decodeEntry, type QueuedItem } from './codec';
import { QueueKeys } from './keys';
import { withScripts, type ScriptedRedis } from './scripts';

export interface HaltReason {
  code: string;
  message: string;
  tradeId?: string;
  seq?: number;
  /** When (ms) and by whom: a worker's policy or an operator. */
  at?: number;
  by?: string;
}

/** What {@link PartitionAdmin.forgetTrade} found. */
export type ForgetResult = 'forgotten' | 'absent' | 'queued' | 'other-delivery';

const FORGET: Record<number, ForgetResult> = {
  1: 'forgotten',
  0: 'absent',
  [-1]: 'queued',
  [-2]: 'other-delivery',
};

/** Operator actions on partitions: halt, resume, skip the head, forget a dead-lettered trade. */
export class PartitionAdmin {
  readonly keys: QueueKeys;
  private readonly redis: ScriptedRedis;

  constructor(
    redis: Redis,
    namespace: string,
    private readonly dedupWindowSeconds = 86400,
  ) {
    this.keys = new QueueKeys(namespace);
    this.redis = withScripts(redis);
  }

  /** Halts a partition; a worker draining it stops at its next batch boundary. */
  async halt(partitionKey: string, reason: HaltReason): Promise<boolean> {
    const r = await this.redis.tfHalt(
      ...this.keys.haltKeys,
      partitionKey,
      '',
      JSON.stringify({ at: Date.now(), by: 'operator', ...reason }),
    );
    return r === 1;
  }

  /** Resumes a halted partition and makes it claimable. Returns false if it was not halted. */
  async resume(partitionKey: string): Promise<boolean> {
    const k = this.keys;
    const r = await this.redis.tfResume(
      k.halted,
      k.pending,
      k.list(partitionKey),
      k.ready,
      k.leases,
      k.wake,
      partitionKey,
    );
    return r >= 0;
  }

  /**
   * Removes the head of a halted partition if its seq is `expectedSeq`. The
   * caller records it (as a dead letter) in PostgreSQL first.
   */
  async skipHead(partitionKey: string, expectedSeq: number): Promise<QueuedItem> {
    const k = this.keys;
    const r = await this.redis.tfSkipHead(
      k.halted,
      k.list(partitionKey),
      k.backlog,
      partitionKey,
      expectedSeq,
      k.base + ':',
      this.dedupWindowSeconds,
    );
    if (r === -1)
      throw new Error(`partition ${partitionKey} is not halted; halt it before skipping its head`);
    if (r === -2)
      throw new Error(
        `the head of partition ${partitionKey} is not seq ${expectedSeq} any more; reload and retry`,
      );
    return decodeEntry(String(r));
  }

  /**
   * Deletes the done marker a dead-lettered delivery (`partitionKey`, `seq`)
   * left for `tradeId`, so that the same tradeId can be enqueued again (a
   * replay). Refuses ('queued') while the tradeId is unapplied in the queue,
   * and keeps ('other-delivery') a marker written by another delivery of it.
   */
  async forgetTrade(tradeId: string, partitionKey: string, seq: number): Promise<ForgetResult> {
    const k = this.keys;
    const r = await this.redis.tfForgetTrade(k.backlog, k.done(tradeId), tradeId, partitionKey, seq);
    const result = FORGET[r];
    if (!result) throw new Error(`forgetTrade returned ${r}`);
    return result;
  }

  async listHalted(): Promise<{ partitionKey: string; reason: HaltReason }[]> {
    const all = await this.redis.hgetall(this.keys.halted);
    return Object.entries(all).map(([partitionKey, reason]) => ({
      partitionKey,
      reason: JSON.parse(reason) as HaltReason,
    }));
  }
}
