import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { QueueKeys } from './keys';
import { withScripts, type ScriptedRedis } from './scripts';

export interface ReconcilerOptions {
  redis: Redis;
  namespace: string;
  /** How often a pass runs. @default 5000 */
  intervalMs?: number;
  /** Partitions looked at per Lua call (ZSCAN COUNT), so one call never blocks Redis for long. @default 500 */
  pageSize?: number;
  onArmed?: (partitionKeys: string[]) => void;
  onError?: (error: unknown) => void;
}

/**
 * Makes claimable again the partitions that have trades but are neither
 * ready, leased nor halted. Enqueue, ack, release and resume keep that true
 * atomically, so this repairs only state changed from outside (keys deleted
 * by hand, a partial restore). Runs in every worker; a Redis lock lets one
 * pass run at a time across the fleet.
 */
export class Reconciler {
  private readonly keys: QueueKeys;
  private readonly redis: ScriptedRedis;
  private readonly id = randomUUID();
  private timer?: NodeJS.Timeout;
  private running?: Promise<unknown>;

  constructor(private readonly opts: ReconcilerOptions) {
    this.keys = new QueueKeys(opts.namespace);
    this.redis = withScripts(opts.redis);
  }

  /** One pass over the pending set; returns the partitions it re-armed. */
  async runOnce(): Promise<string[]> {
    const interval = this.opts.intervalMs ?? 5000;
    const got = await this.redis.set(this.keys.reconcilerLock, this.id, 'PX', Math.max(1000, interval), 'NX');
    if (got !== 'OK') return [];
    const pageSize = this.opts.pageSize ?? 500;
    const armed: string[] = [];
    // ZSCAN, not ranks: workers drain partitions out of the set while we page,
    // and ZSCAN still returns every member present for the whole pass.
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.zscan(this.keys.pending, cursor, 'COUNT', pageSize);
      cursor = next;
      const pks = flat.filter((_, i) => i % 2 === 0);
      if (pks.length === 0) continue;
      const k = this.keys;
      const rearmed = await this.redis.tfRearm(k.pending, k.halted, k.ready, k.leases, k.wake, ...pks);
      armed.push(...rearmed);
    } while (cursor !== '0');
    if (armed.length > 0) this.opts.onArmed?.(armed);
    return armed;
  }

  start(): void {
    if (this.timer) return;
    const tick = () => {
      this.running = this.runOnce().catch((e) => this.opts.onError?.(e));
    };
    this.timer = setInterval(tick, this.opts.intervalMs ?? 5000);
    this.timer.unref();
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
