/**
 * The worker process end to end: real Redis, real PostgreSQL, two worker
 * processes started from src/worker/main.ts. Every position must equal the
 * fold of its partition's trades in seq order (digest included), and the
 * workers must stop cleanly on SIGTERM.
 */
import IORedis from 'ioredis';
import { sql, type Kysely } from 'kysely';
import { Client } from 'pg';
import { createDb, migrateToLatest, type DbHandle } from '../../src/db';
import {
  canonicalDecimalString,
  canonicalTradeJson,
  foldAll,
  partitionKey,
  payloadHash,
  validateTrade,
  type PartitionIds,
  type SequencedTrade,
  type Trade,
} from '../../src/domain';
import { PartitionQueue, readSignals, type EnqueueItem } from '../../src/queue';
import { createTestDatabase, redisUrl, testNamespace, type TestDatabase } from '../helpers/isolation';
import { spawnTs, stopAll, waitFor } from '../helpers/processes';

const PARTITIONS = 50;
const PER_PARTITION = 60;
const SHUTDOWN_TIMEOUT_MS = 5000;

let redis: IORedis;
let database: TestDatabase;
let handle: DbHandle;

beforeAll(async () => {
  redis = new IORedis(redisUrl(), { maxRetriesPerRequest: null });
  database = await createTestDatabase();
  handle = createDb({ databaseUrl: database.url, poolSize: 4 });
  await migrateToLatest(handle.db as Kysely<unknown>);
});
afterAll(async () => {
  await stopAll();
  await handle?.close();
  await database?.drop();
  await redis?.quit();
});

/** A small deterministic PRNG (mulberry32), so that a failure can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function valid(input: object): Trade {
  const r = validateTrade(input);
  if (!r.ok) throw new Error(`bad generated trade: ${JSON.stringify(r.errors)}`);
  return r.trade;
}

/**
 * Per partition: mostly NEW trades, AMENDs and CANCELs of earlier ones (some
 * of them already cancelled), and now and then an AMEND of an unknown trade,
 * which the dead-letter policy records.
 */
function generate(seed: number): { ids: PartitionIds; pk: string; trades: Trade[] }[] {
  const rand = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  return Array.from({ length: PARTITIONS }, (_, p) => {
    const ids = { accountId: `ACC-${p}`, bookId: 'BOOK_1', securityId: `SEC_${p % 7}` };
    const base = { ...ids, tradeTime: '2026-05-04T12:00:00.5-04:00' };
    const news: string[] = [];
    const trades: Trade[] = [];
    for (let i = 0; i < PER_PARTITION; i++) {
      const tradeId = `P${p}-${i}`;
      const legs = {
        side: pick(['BUY', 'SELL'] as const),
        quantity: `${1 + Math.floor(rand() * 1000)}.${Math.floor(rand() * 100)}`,
        price: `${Math.floor(rand() * 500)}.${Math.floor(rand() * 10000)}`,
        currency: 'EUR',
      };
      const r = rand();
      if (news.length === 0 || r < 0.6) {
        news.push(tradeId);
        trades.push(valid({ ...base, tradeId, type: 'NEW', ...legs }));
      } else if (r < 0.8) {
        trades.push(valid({ ...base, tradeId, type: 'AMEND', refTradeId: pick(news), ...legs }));
      } else if (r < 0.95) {
        trades.push(valid({ ...base, tradeId, type: 'CANCEL', refTradeId: pick(news) }));
      } else {
        trades.push(valid({ ...base, tradeId, type: 'AMEND', refTradeId: `GHOST-${p}-${i}`, ...legs }));
      }
    }
    return { ids, pk: partitionKey(ids.accountId, ids.bookId, ids.securityId), trades };
  });
}

test('ordering: 3,000 trades over 50 partitions drained by 2 worker processes equal foldAll per partition; SIGTERM exits 0', async () => {
  const ns = testNamespace('worker-process');
  const partitions = generate(20260504);
  // Interleave partitions, as producers would.
  const order: { pk: string; trade: Trade }[] = [];
  for (let i = 0; i < PER_PARTITION; i++)
    for (const p of partitions) order.push({ pk: p.pk, trade: p.trades[i]! });
  const items: EnqueueItem[] = order.map(({ pk, trade }) => ({
    partitionKey: pk,
    tradeId: trade.tradeId,
    payloadHash: payloadHash(trade),
    body: canonicalTradeJson(trade),
  }));

  const queue = new PartitionQueue({ redis, namespace: ns });
  const seqs = new Map<string, number>();
  const enqueueAll = async (list: EnqueueItem[]) => {
    for (let i = 0; i < list.length; i += 500) {
      const chunk = list.slice(i, i + 500);
      const results = await queue.enqueue(chunk);
      results.forEach((r, j) => {
        expect(r.status).toBe('queued');
        seqs.set(chunk[j]!.tradeId, r.seq);
      });
    }
  };

  const env = {
    REDIS_URL: redisUrl(),
    DATABASE_URL: database.url,
    TRADEFLEET_NAMESPACE: ns,
    LOG_LEVEL: 'warn',
    WORKER_CONCURRENCY: '8',
    WORKER_BATCH_SIZE: '32',
    WORKER_BUDGET: '96',
    LOCK_DURATION_MS: '2000',
    STALLED_INTERVAL_MS: '1000',
    PG_POOL_SIZE: '8',
    PERMANENT_FAILURE_POLICY: 'dead-letter',
    SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
  };
  // Half before the workers start, half while they drain.
  const half = Math.floor(items.length / 2);
  await enqueueAll(items.slice(0, half));
  const started = Date.now();
  const workers = [spawnTs('src/worker/main.ts', env), spawnTs('src/worker/main.ts', env)];
  await enqueueAll(items.slice(half));
  await waitFor(
    'the backlog to drain',
    async () => {
      const s = await readSignals(redis, queue.keys);
      for (const w of workers) {
        if (w.exitCode !== null)
          throw new Error(
            `a worker exited early (${w.exitCode}): ${(w as unknown as { stderrTail(): string }).stderrTail()}`,
          );
      }
      return s.backlog === 0 && s.pendingPartitions === 0;
    },
    45_000,
    100,
  );
  const drainMs = Date.now() - started;

  const db = handle.db;
  const positions = await db.selectFrom('positions').selectAll().execute();
  expect(positions).toHaveLength(PARTITIONS);
  const byPk = new Map(positions.map((p) => [p.partition_key, p]));
  let rejections = 0;
  for (const p of partitions) {
    const sequenced: SequencedTrade[] = p.trades
      .map((trade) => ({ seq: seqs.get(trade.tradeId)!, trade }))
      .sort((a, b) => a.seq - b.seq);
    const fold = foldAll(p.ids, sequenced);
    rejections += fold.rejections.length;
    const row = byPk.get(p.pk)!;
    expect({
      pk: p.pk,
      currency: row.currency,
      netQuantity: canonicalDecimalString(row.net_quantity),
      boughtQuantity: canonicalDecimalString(row.bought_quantity),
      soldQuantity: canonicalDecimalString(row.sold_quantity),
      boughtNotional: canonicalDecimalString(row.bought_notional),
      soldNotional: canonicalDecimalString(row.sold_notional),
      tradeCount: Number(row.trade_count),
      lastSeq: Number(row.last_seq),
      digest: row.digest,
    }).toEqual({
      pk: p.pk,
      currency: fold.position.currency,
      netQuantity: fold.position.netQuantity,
      boughtQuantity: fold.position.boughtQuantity,
      soldQuantity: fold.position.soldQuantity,
      boughtNotional: fold.position.boughtNotional,
      soldNotional: fold.position.soldNotional,
      tradeCount: fold.position.tradeCount,
      lastSeq: PER_PARTITION,
      digest: fold.position.digest,
    });
  }
  const counts = await db
    .selectFrom('dead_letters')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .executeTakeFirstOrThrow();
  expect(Number(counts.n)).toBe(rejections);
  expect(rejections).toBeGreaterThan(0);
  const applied = await db
    .selectFrom('trades')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .executeTakeFirstOrThrow();
  expect(Number(applied.n) + rejections).toBe(items.length);

  const stopAt = Date.now();
  for (const w of workers) w.kill('SIGTERM');
  await waitFor(
    'the workers to exit',
    () => workers.every((w) => w.exitCode !== null || w.signalCode !== null),
    SHUTDOWN_TIMEOUT_MS + 2000,
    20,
  );
  const stopMs = Date.now() - stopAt;
  expect(workers.map((w) => w.exitCode)).toEqual([0, 0]);
  expect(stopMs).toBeLessThan(SHUTDOWN_TIMEOUT_MS);
  if (process.env.TF_TEST_VERBOSE)
    console.log(
      `drained ${items.length} trades in ${drainMs} ms (incl. worker start); stopped in ${stopMs} ms`,
    );
}, 60_000);

test('graceful-shutdown: a batch stuck past SHUTDOWN_TIMEOUT_MS is abandoned (exit 1), and the next worker applies it', async () => {
  const ns = testNamespace('worker-stuck');
  const ids = { accountId: 'STUCK', bookId: 'B', securityId: 'S' };
  const pk = partitionKey(ids.accountId, ids.bookId, ids.securityId);
  const trades = [0, 1, 2].map((i) =>
    valid({
      ...ids,
      tradeId: `STUCK-${i}`,
      type: 'NEW',
      side: 'BUY',
      quantity: '1',
      price: '2',
      currency: 'CHF',
      tradeTime: '2026-05-04T12:00:00Z',
    }),
  );
  const queue = new PartitionQueue({ redis, namespace: ns });
  const env = {
    REDIS_URL: redisUrl(),
    DATABASE_URL: database.url,
    TRADEFLEET_NAMESPACE: ns,
    LOG_LEVEL: 'warn',
    LOCK_DURATION_MS: '2000',
    STALLED_INTERVAL_MS: '1000',
    SHUTDOWN_TIMEOUT_MS: '1000',
  };
  // Another session holds the position's row lock: the worker's SELECT ... FOR UPDATE waits.
  await handle.db
    .insertInto('positions')
    .values({
      partition_key: pk,
      account_id: ids.accountId,
      book_id: ids.bookId,
      security_id: ids.securityId,
    })
    .execute();
  const holder = new Client({ connectionString: database.url });
  holder.on('error', () => undefined);
  await holder.connect();
  try {
    await holder.query('begin');
    await holder.query('select 1 from positions where partition_key = $1 for update', [pk]);
    await queue.enqueue(
      trades.map((t) => ({
        partitionKey: pk,
        tradeId: t.tradeId,
        payloadHash: payloadHash(t),
        body: canonicalTradeJson(t),
      })),
    );
    const stuck = spawnTs('src/worker/main.ts', env);
    // Asked on another connection: pg_stat_activity is a snapshot per transaction, and holder is in one.
    await waitFor(
      'the worker to wait for the row lock',
      async () => {
        const r = await sql<{ n: string }>`select count(*) as n from pg_stat_activity
        where datname = current_database() and wait_event_type = 'Lock' and application_name = 'tradefleet-worker'`.execute(
          handle.db,
        );
        return Number(r.rows[0]!.n) > 0;
      },
      20_000,
      50,
    );
    const stopAt = Date.now();
    stuck.kill('SIGTERM');
    await waitFor('the stuck worker to exit', () => stuck.exitCode !== null, 5000, 20);
    const stopMs = Date.now() - stopAt;
    // Deadline 1000 ms for the batches in hand, then at most 1000 ms for the pool.
    expect(stopMs).toBeLessThan(3000);
    expect(stuck.exitCode).toBe(1);
    await holder.query('commit');

    // Its token's lock expires; a new worker takes the partition and applies everything once.
    spawnTs('src/worker/main.ts', env);
    await waitFor(
      'the backlog to drain',
      async () => (await readSignals(redis, queue.keys)).backlog === 0,
      20_000,
      50,
    );
    const row = await handle.db
      .selectFrom('positions')
      .selectAll()
      .where('partition_key', '=', pk)
      .executeTakeFirstOrThrow();
    const fold = foldAll(
      ids,
      trades.map((trade, i) => ({ seq: i + 1, trade })),
    );
    expect({ lastSeq: Number(row.last_seq), count: Number(row.trade_count), digest: row.digest }).toEqual({
      lastSeq: 3,
      count: 3,
      digest: fold.position.digest,
    });
  } finally {
    await holder.end();
    await stopAll();
  }
}, 60_000);
