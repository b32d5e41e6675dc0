import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { QueueKeys } from './keys';
import { withScripts, type ScriptedRedis } from './scripts';
import { TokenQueue } from './tokens';

export interface ReconcilerOptions {
  redis: Redis;
  namespace: string;
  /** How often a pass runs. @default 5000 */
  intervalMs?: number;
  /** Partitions looked at per Lua call, so one call never blocks Redis for long. @default 500 */
  pageSize?: number;
  onArmed?: (partitionKeys: string[]) => void;
  onError?: (error: unknown) => void;
}

/**
 * Re-arms partitions that have trades but no drain token: a producer that died
 * between its enqueue and its token add, a token whose attempts ran out, a
 * token removed by hand. Runs in every worker; a Redis lock lets one pass run
 * at a time across the fleet.
 */
export class Reconciler {
  private readonly keys: QueueKeys;
  private readonly redis: ScriptedRedis;
  private readonly tokens: TokenQueue;
  private readonly id = randomUUID();
  private timer?: NodeJS.Timeout;
  private running?: Promise<unknown>;

  constructor(private readonly opts: ReconcilerOptions) {
    this.keys = new QueueKeys(opts.namespace);
    this.redis = withScripts(opts.redis);
    this.tokens = new TokenQueue(opts.redis, this.keys);
  }

  /** One pass over the pending set; returns the partitions it re-armed. */
  async runOnce(): Promise<string[]> {
    const interval = this.opts.intervalMs ?? 5000;
    const got = await this.redis.set(this.keys.reconcilerLock, this.id, 'PX', Math.max(1000, interval), 'NX');
    if (got !== 'OK') return [];
    const pageSize = this.opts.pageSize ?? 500;
    const armed: string[] = [];
    for (let offset = 0; ; offset += pageSize) {
      const r = await this.redis.tfUnarmed(this.keys.pending, this.keys.dedupPrefix, this.keys.jobPrefix, offset, pageSize);
      const pks = r.slice(1) as string[];
      if (pks.length > 0) {
        await this.tokens.arm(pks);
        armed.push(...pks);
      }
      if (offset + pageSize >= Number(r[0])) break;
    }
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
    await this.tokens.close();
  }
}
