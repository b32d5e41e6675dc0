/**
 * PostgreSQL going away under a running worker (runWorker in this process,
 * against a PostgreSQL of this file's own that it stops and restarts): the
 * circuit opens and the worker stops taking partitions, then it closes by
 * itself when the database answers again, and nothing is lost or applied twice.
 */
import IORedis from 'ioredis';
import type { Kysely } from 'kysely';
import { Client } from 'pg';
import { createDb, migrateToLatest } from '../../src/db';
import {
  canonicalDecimalString,
  canonicalTradeJson,
  foldAll,
  partitionKey,
  payloadHash,
  validateTrade,
  type PartitionIds,
  type Trade,
} from '../../src/domain';
import { createLogger } from '../../src/observability/logger';
import { PartitionQueue, readSignals, type EnqueueItem } from '../../src/queue';
import { runWorker, type RunningWorker } from '../../src/worker/main';
import { redisUrl, testNamespace } from '../helpers/isolation';
import { waitFor } from '../helpers/processes';
import { startPostgres, type PostgresServer } from '../helpers/servers';

let redis: IORedis;
let pg: PostgresServer | undefined;
let worker: RunningWorker | undefined;

beforeAll(() => {
  redis = new IORedis(redisUrl(), { maxRetriesPerRequest: null });
});
afterAll(async () => {
  await worker?.close();
  await pg?.stop();
  await redis.quit();
});

interface LogLine {
  level: string;
  msg: string;
  [k: string]: unknown;
}

const PARTITIONS = 8;

function partitionTrades(
  p: number,
  from: number,
  to: number,
): { ids: PartitionIds; pk: string; trades: Trade[] } {
  const ids = { accountId: `OUT-${p}`, bookId: 'B', securityId: 'S' };
  const trades: Trade[] = [];
  for (let i = from; i < to; i++) {
    const base = { ...ids, tradeId: `O${p}-${i}`, tradeTime: '2026-01-05T08:00:00Z' };
    const legs = {
      side: i % 3 ? 'BUY' : 'SELL',
      quantity: `${i + 1}`,
      price: `${p + 1}.25`,
      currency: 'GBP',
    };
    const input =
      i % 5 === 3
        ? { ...base, type: 'AMEND', refTradeId: `O${p}-${i - 1}`, ...legs }
        : i % 7 === 6
          ? { ...base, type: 'CANCEL', refTradeId: `O${p}-${i - 2}` }
          : { ...base, type: 'NEW', ...legs };
    const r = validateTrade(input);
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    trades.push(r.trade);
  }
  return { ids, pk: partitionKey(ids.accountId, ids.bookId, ids.securityId), trades };
}

async function reachable(url: string): Promise<boolean> {
  const c = new Client({ connectionString: url, connectionTimeoutMillis: 500 });
  c.on('error', () => undefined);
  try {
    await c.connect();
    await c.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

test('circuit breaker: PostgreSQL down pauses the worker, back up resumes it; positions equal foldAll', async () => {
  pg = await startPostgres();
  const setup = createDb({ databaseUrl: pg.url, poolSize: 2 });
  await migrateToLatest(setup.db as Kysely<unknown>);
  await setup.close();

  const ns = testNamespace('outage');
  const lines: LogLine[] = [];
  const logger = createLogger({
    level: 'debug',
    name: 'test-worker',
    destination: { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) },
  });
  worker = await runWorker(
    {
      REDIS_URL: redisUrl(),
      DATABASE_URL: pg.url,
      TRADEFLEET_NAMESPACE: ns,
      WORKER_CONCURRENCY: '4',
      WORKER_BATCH_SIZE: '8',
      WORKER_BUDGET: '32',
      LOCK_DURATION_MS: '2000',
      STALLED_INTERVAL_MS: '1000',
      PG_POOL_SIZE: '4',
      SHUTDOWN_TIMEOUT_MS: '5000',
    },
    {
      logger,
      handleSignals: false,
      retry: { attempts: 3, baseMs: 20, maxMs: 100 },
      breaker: { threshold: 3, probeBaseMs: 200, probeMaxMs: 800 },
      reconcileIntervalMs: 1000,
    },
  );
  const queue = new PartitionQueue({ redis, namespace: ns });
  const seqs = new Map<string, number>();
  const enqueue = async (from: number, to: number) => {
    const items: EnqueueItem[] = [];
    for (let i = from; i < to; i++) {
      for (let p = 0; p < PARTITIONS; p++) {
        const t = partitionTrades(p, i, i + 1).trades[0]!;
        items.push({
          partitionKey: partitionTrades(p, 0, 0).pk,
          tradeId: t.tradeId,
          payloadHash: payloadHash(t),
          body: canonicalTradeJson(t),
        });
      }
    }
    const results = await queue.enqueue(items);
    results.forEach((r, j) => seqs.set(items[j]!.tradeId, r.seq));
  };
  const drained = () =>
    waitFor(
      'the backlog to drain',
      async () => {
        const s = await readSignals(redis, queue.keys);
        return s.backlog === 0 && s.pendingPartitions === 0;
      },
      30_000,
      50,
    );

  await enqueue(0, 20);
  await drained();
  expect(worker.breaker.state).toBe('closed');

  // Fast shutdown: backends are told 57P01, new connections are refused.
  pg.kill('SIGINT');
  await waitFor('PostgreSQL to be down', async () => !(await reachable(pg!.url)), 10_000, 50);
  await enqueue(20, 40);
  await waitFor(
    'the circuit to open and the worker to pause',
    () => worker!.breaker.state !== 'closed' && worker!.consumer.isPaused,
    15_000,
    20,
  );
  expect((await readSignals(redis, queue.keys)).backlog).toBeGreaterThan(0);
  expect(lines.some((l) => l.level === 'error' && /circuit open/.test(l.msg))).toBe(true);

  await pg.restart();
  await drained();
  expect(worker.breaker.state).toBe('closed');
  expect(worker.consumer.isPaused).toBe(false);
  expect(lines.some((l) => l.level === 'info' && /circuit closed/.test(l.msg))).toBe(true);

  const check = createDb({ databaseUrl: pg.url, poolSize: 1 });
  try {
    for (let p = 0; p < PARTITIONS; p++) {
      const { ids, pk, trades } = partitionTrades(p, 0, 40);
      const fold = foldAll(
        ids,
        trades.map((trade) => ({ seq: seqs.get(trade.tradeId)!, trade })),
      );
      const row = await check.db
        .selectFrom('positions')
        .selectAll()
        .where('partition_key', '=', pk)
        .executeTakeFirstOrThrow();
      expect({
        net: canonicalDecimalString(row.net_quantity),
        boughtNotional: canonicalDecimalString(row.bought_notional),
        soldNotional: canonicalDecimalString(row.sold_notional),
        count: Number(row.trade_count),
        lastSeq: Number(row.last_seq),
        digest: row.digest,
      }).toEqual({
        net: fold.position.netQuantity,
        boughtNotional: fold.position.boughtNotional,
        soldNotional: fold.position.soldNotional,
        count: fold.position.tradeCount,
        lastSeq: 40,
        digest: fold.position.digest,
      });
    }
  } finally {
    await check.close();
  }

  // Batch lines carry the partition, the seq range and the trade ids.
  const batchLine = lines.find((l) => l.msg === 'applied batch');
  expect(batchLine).toMatchObject({
    partitionKey: expect.any(String),
    firstSeq: expect.any(Number),
    lastSeq: expect.any(Number),
    tradeIds: expect.any(Array),
  });

  if (process.env.TF_TEST_VERBOSE) {
    const notable = lines.filter((l) => l.level !== 'info' || /circuit|start|stop/.test(l.msg));
    console.log(
      notable
        .map((l) => `${l.level} ${l.msg}${l.err ? ` (${(l.err as { message?: string }).message})` : ''}`)
        .join('\n'),
    );
  }
  const closing = worker.close();
  expect(worker.close()).toBe(closing); // idempotent: the same promise
  expect(await closing).toEqual({ forced: false });
}, 60_000);
