import type { Redis } from 'ioredis';
import { decodeEntry, decodeTradeIndex, type QueuedItem } from './codec';
import { QueueKeys } from './keys';

/** The queue's own numbers, as KEDA reads them and as the dashboard shows them. */
export interface QueueSignals {
  /** Partitions with unapplied trades, in flight included, halted excluded: the usable parallelism. */
  pendingPartitions: number;
  /** Unapplied trades, halted partitions' included. */
  backlog: number;
  /** Enqueue time of the oldest waiting head (Redis clock, ms), or null when idle. */
  oldestEnqueuedAt: number | null;
  /** Age of that trade against the Redis clock, 0 when idle. */
  oldestAgeMs: number;
  haltedPartitions: number;
}

export async function readSignals(redis: Redis, keys: QueueKeys): Promise<QueueSignals> {
  const res = await redis
    .multi()
    .zcard(keys.pending)
    .hlen(keys.backlog)
    .zrange(keys.pending, 0, 0, 'WITHSCORES')
    .hlen(keys.halted)
    .time()
    .exec();
  if (!res) throw new Error('signals transaction aborted');
  for (const [err] of res) if (err) throw err;
  const oldest = res[2]![1] as string[];
  const [sec, usec] = res[4]![1] as [string, string];
  const now = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
  const oldestEnqueuedAt = oldest.length === 2 ? Number(oldest[1]) : null;
  return {
    pendingPartitions: Number(res[0]![1]),
    backlog: Number(res[1]![1]),
    oldestEnqueuedAt,
    oldestAgeMs: oldestEnqueuedAt === null ? 0 : Math.max(0, now - oldestEnqueuedAt),
    haltedPartitions: Number(res[3]![1]),
  };
}

/** Where the partitions with work are in their life cycle, as the dashboard shows it. */
export interface LeaseCounts {
  /** Claimable now: trades queued, no lease. */
  ready: number;
  /** Waiting out a retry backoff after a failed batch. */
  retrying: number;
  /** Leased by a worker (being drained). */
  leased: number;
  /** Of those, leases past their expiry: a worker died or froze; the next claim takes them over. */
  expired: number;
}

export async function readLeaseCounts(redis: Redis, keys: QueueKeys): Promise<LeaseCounts> {
  const t = await redis.time();
  const now = Number(t[0]) * 1000 + Math.floor(Number(t[1]) / 1000);
  const res = await redis
    .multi()
    .zcount(keys.ready, '-inf', now)
    .zcount(keys.ready, `(${now}`, '+inf')
    .zcard(keys.leases)
    .zcount(keys.leases, '-inf', now)
    .exec();
  if (!res) throw new Error('lease counts transaction aborted');
  for (const [err] of res) if (err) throw err;
  const [ready, retrying, leased, expired] = res.map(([, v]) => Number(v));
  return { ready: ready!, retrying: retrying!, leased: leased!, expired: expired! };
}

/** The first `count` unapplied trades of a partition, head first. */
export async function readHead(
  redis: Redis,
  keys: QueueKeys,
  partitionKey: string,
  count = 10,
): Promise<QueuedItem[]> {
  const entries = await redis.lrange(keys.list(partitionKey), 0, count - 1);
  return entries.map(decodeEntry);
}

/** Pending partitions ordered by their oldest waiting trade. */
export async function oldestPartitions(
  redis: Redis,
  keys: QueueKeys,
  count = 20,
): Promise<{ partitionKey: string; headEnqueuedAt: number }[]> {
  const r = await redis.zrange(keys.pending, 0, count - 1, 'WITHSCORES');
  const out = [];
  for (let i = 0; i < r.length; i += 2) out.push({ partitionKey: r[i]!, headEnqueuedAt: Number(r[i + 1]) });
  return out;
}

/** Where Redis knows a trade from: still queued, or applied within the dedup window. */
export async function locateTrade(
  redis: Redis,
  keys: QueueKeys,
  tradeId: string,
): Promise<{ state: 'queued' | 'done'; seq: number; partitionKey: string; payloadHash: string } | null> {
  const [queued, done] = await Promise.all([
    redis.hget(keys.backlog, tradeId),
    redis.get(keys.done(tradeId)),
  ]);
  if (queued) return { state: 'queued', ...decodeTradeIndex(queued) };
  if (done) return { state: 'done', ...decodeTradeIndex(done) };
  return null;
}

/**
 * The partitions with the most unapplied trades, halted ones included (a
 * halted partition keeps its backlog). Looks at up to `scanLimit` partitions
 * (ZSCAN of the pending set, then the halted hash) with one pipelined LLEN
 * round trip; beyond that the answer is a sample, and `complete` says so.
 */
export async function hottestPartitions(
  redis: Redis,
  keys: QueueKeys,
  count = 20,
  scanLimit = 10_000,
): Promise<{ partitions: { partitionKey: string; queued: number; halted: boolean }[]; complete: boolean }> {
  const pks = new Set<string>();
  let complete = true;
  let cursor = '0';
  do {
    const [next, flat] = await redis.zscan(keys.pending, cursor, 'COUNT', 1000);
    cursor = next;
    for (let i = 0; i < flat.length; i += 2) pks.add(flat[i]!);
    if (pks.size >= scanLimit && cursor !== '0') complete = false;
  } while (cursor !== '0' && pks.size < scanLimit);
  const halted = new Set(await redis.hkeys(keys.halted));
  for (const pk of halted) pks.add(pk);
  const list = [...pks];
  const p = redis.pipeline();
  for (const pk of list) p.llen(keys.list(pk));
  const lens = (await p.exec()) ?? [];
  const partitions = list
    .map((partitionKey, i) => ({
      partitionKey,
      queued: Number(lens[i]?.[1] ?? 0),
      halted: halted.has(partitionKey),
    }))
    .filter((x) => x.queued > 0)
    .sort((a, b) => b.queued - a.queued || a.partitionKey.localeCompare(b.partitionKey))
    .slice(0, count);
  return { partitions, complete };
}
