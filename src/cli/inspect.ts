import type { Redis } from 'ioredis';
import { loadWorkerConfig } from '../config';
import { createRedis, pgConnection } from '../config/connections';
import { createDb } from '../db/client';
import { PartitionAdmin, QueueKeys, oldestPartitions, readSignals } from '../queue';
import { parse } from './args';

const USAGE = 'Usage: tradefleet inspect [--json] [--top N]';

/** How far inspect looks for the hottest partitions; beyond it the list is a sample. */
const HOT_SCAN_LIMIT = 10_000;

export async function inspect(argv: string[]): Promise<number> {
  const { values } = parse(argv, { json: { type: 'boolean' }, top: { type: 'string' } }, USAGE);
  const top = Number(values.top ?? 10);
  const config = loadWorkerConfig(process.env);
  const keys = new QueueKeys(config.namespace);
  const redis = createRedis(config, { maxRetriesPerRequest: 1 });
  const { db, close } = createDb({ ...pgConnection(config), poolSize: 2 });
  const admin = new PartitionAdmin(redis, config.namespace);
  try {
    await redis.ping();
    const signals = await readSignals(redis, keys);
    const oldest = await oldestPartitions(redis, keys, top);
    const hottest = await hottestPartitions(redis, keys, top);
    const halted = await admin.listHalted();
    const deadLetters = await db
      .selectFrom('dead_letters')
      .select(['trade_id', 'partition_key', 'seq', 'reason_code', 'reason', 'created_at'])
      .orderBy('created_at', 'desc')
      .limit(top)
      .execute()
      .catch((e: Error) => ({ error: e.message }));
    const report = { namespace: config.namespace, signals, oldest, hottest, halted, deadLetters };
    if (values.json) {
      console.log(JSON.stringify(report, null, 2));
      return 0;
    }
    const s = signals;
    console.log(`namespace ${config.namespace}`);
    console.log(
      `backlog ${s.backlog} trades | pending partitions ${s.pendingPartitions} | halted ${s.haltedPartitions} | oldest waiting ${(s.oldestAgeMs / 1000).toFixed(1)} s`,
    );
    const now = Date.now();
    section(
      'oldest waiting partitions',
      oldest.map((o) => `${o.partitionKey}  waiting ${((now - o.headEnqueuedAt) / 1000).toFixed(1)} s`),
    );
    section(
      'hottest partitions (by queued trades)',
      hottest.map((h) => `${h.partitionKey}  ${h.queued}`),
    );
    section(
      'halted partitions',
      halted.map(
        (h) =>
          `${h.partitionKey}  ${h.reason.code}: ${h.reason.message}${h.reason.seq ? ` (seq ${h.reason.seq})` : ''}`,
      ),
    );
    section(
      'recent dead letters',
      Array.isArray(deadLetters)
        ? deadLetters.map(
            (d) => `${d.trade_id}  ${d.partition_key} seq ${d.seq}  ${d.reason_code}: ${d.reason}`,
          )
        : [`(not readable: ${deadLetters.error})`],
    );
    return 0;
  } finally {
    redis.disconnect();
    await close();
  }
}

function section(title: string, lines: string[]) {
  console.log(`\n${title}:`);
  for (const l of lines.length ? lines : ['(none)']) console.log(`  ${l}`);
}

async function hottestPartitions(redis: Redis, keys: QueueKeys, top: number) {
  const pks: string[] = [];
  let cursor = '0';
  do {
    const [next, flat] = await redis.zscan(keys.pending, cursor, 'COUNT', 1000);
    cursor = next;
    for (let i = 0; i < flat.length; i += 2) pks.push(flat[i]!);
  } while (cursor !== '0' && pks.length < HOT_SCAN_LIMIT);
  const p = redis.pipeline();
  for (const pk of pks) p.llen(keys.list(pk));
  const lens = (await p.exec()) ?? [];
  return pks
    .map((partitionKey, i) => ({ partitionKey, queued: Number(lens[i]?.[1] ?? 0) }))
    .sort((a, b) => b.queued - a.queued)
    .slice(0, top);
}
