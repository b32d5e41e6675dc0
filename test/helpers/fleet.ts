/**
 * A tradefleet fleet through the `tradefleet` CLI, as the end-to-end and chaos
 * tests (and bench/chaos.ts) run it: migrate, one producer, N workers, against
 * a given Redis and PostgreSQL; and the check of every position against the
 * fold of its partition's trades in seq order.
 *
 * Nothing here uses Jest: bench/chaos.ts runs it as a plain script.
 */
import type { ChildProcess } from 'node:child_process';
import type { Redis } from 'ioredis';
import { Client } from 'pg';
import { canonicalDecimalString, type Position } from '../../src/domain';
import { QueueKeys, readSignals } from '../../src/queue';
import { testNamespace } from './isolation';
import { exitCode, outputOf, spawnCli, waitFor } from './processes';
import { freePort } from './servers';
import { expectedPositions, type ExpectedPartition } from './trades';

export interface Fleet {
  api: string;
  /** The environment every process of the fleet got (workers started later get it too). */
  env: Record<string, string>;
  producer: ChildProcess;
  workers: ChildProcess[];
  keys: QueueKeys;
}

export interface FleetOptions {
  /** @default the integration project's shared Redis (TEST_REDIS_URL) */
  redisUrl?: string;
  /** Label of the generated queue namespace. @default 'fleet' */
  namespaceLabel?: string;
  /** On top of `env`, for the producer only. */
  producerEnv?: Record<string, string>;
  /** On top of `env`, for the workers only. */
  workerEnv?: Record<string, string>;
}

function sharedRedisUrl(): string {
  const url = process.env.TEST_REDIS_URL;
  if (!url)
    throw new Error(
      'startFleet: pass options.redisUrl, or run in the jest integration project (TEST_REDIS_URL)',
    );
  return url;
}

/** Migrates, starts the producer (waits for /readyz) and `workers` worker processes. */
export async function startFleet(
  databaseUrl: string,
  workers: number,
  extraEnv: Record<string, string> = {},
  options: FleetOptions = {},
): Promise<Fleet> {
  const port = await freePort();
  const namespace = testNamespace(options.namespaceLabel ?? 'fleet');
  const env = {
    REDIS_URL: options.redisUrl ?? sharedRedisUrl(),
    DATABASE_URL: databaseUrl,
    PORT: String(port),
    HOST: '127.0.0.1',
    TRADEFLEET_NAMESPACE: namespace,
    LOCK_DURATION_MS: '2000',
    STALLED_INTERVAL_MS: '1000',
    SHUTDOWN_TIMEOUT_MS: '10000',
    LOG_LEVEL: 'warn',
    ...extraEnv,
  };
  const migrate = spawnCli(['migrate'], env);
  const code = await exitCode(migrate);
  if (code !== 0) throw new Error(`tradefleet migrate exited ${code}: ${outputOf(migrate)}`);
  const producer = spawnCli(['producer'], { ...env, ...options.producerEnv });
  const api = `http://127.0.0.1:${port}`;
  await waitFor(
    'the producer to be ready',
    async () => (await fetch(`${api}/readyz`).catch(() => undefined))?.ok,
    60_000,
    200,
  );
  const workerEnv = { ...env, ...options.workerEnv };
  const ws = Array.from({ length: workers }, () => spawnCli(['worker'], workerEnv));
  return { api, env: workerEnv, producer, workers: ws, keys: new QueueKeys(namespace) };
}

/** Waits until the queue's backlog is 0. */
export async function waitDrained(redis: Redis, keys: QueueKeys, timeoutMs = 120_000): Promise<void> {
  await waitFor(
    'the fleet to drain the backlog',
    async () => (await readSignals(redis, keys)).backlog === 0,
    timeoutMs,
    200,
  );
}

const dec = (s: string) => canonicalDecimalString(s);

/** A row of the positions table as pg returns it (numeric and bigint columns as strings). */
export interface PositionRowRaw {
  partition_key: string;
  account_id: string;
  book_id: string;
  security_id: string;
  net_quantity: string;
  bought_quantity: string;
  sold_quantity: string;
  bought_notional: string;
  sold_notional: string;
  trade_count: string;
  last_seq: string;
  digest: string;
  lease_epoch: string;
}

export interface PositionCheck {
  /** The positions table. */
  rows: PositionRowRaw[];
  /** The fold of every partition's trades in seq order. */
  expected: Map<string, ExpectedPartition>;
  /** Every disagreement (empty when the database equals the fold), at most `limit`. */
  problems: string[];
}

/**
 * Compares the database with the fold of `trades` in the seqs the producer
 * assigned: one position per partition with the same quantities, notionals,
 * count, last_seq, digest and number of dead letters; no tradeId applied twice.
 */
export async function checkPositionsAgainstFold(
  databaseUrl: string,
  trades: Record<string, unknown>[],
  seqs: Map<string, number>,
  limit = 20,
): Promise<PositionCheck> {
  const expected = expectedPositions(trades, seqs);
  const db = new Client({ connectionString: databaseUrl });
  // A server shutdown must not crash the run with an unhandled 'error' event; the query fails instead.
  db.on('error', () => undefined);
  await db.connect();
  try {
    const rows = (await db.query<PositionRowRaw>('select * from positions')).rows;
    const dead = (
      await db.query('select partition_key, count(*)::int as n from dead_letters group by partition_key')
    ).rows;
    const applied = (
      await db.query('select count(*)::int as n, count(distinct trade_id)::int as d from trades')
    ).rows[0];
    const problems: string[] = [];
    if (applied.n !== applied.d)
      problems.push(`trades: ${applied.n} rows for ${applied.d} distinct tradeIds`);
    const deadBy = new Map(dead.map((d) => [d.partition_key as string, d.n as number]));
    if (rows.length !== expected.size)
      problems.push(`positions: ${rows.length} rows, the fold has ${expected.size} partitions`);
    for (const row of rows) {
      const pk = row.partition_key;
      const want = expected.get(pk);
      if (!want) {
        problems.push(`${pk}: unexpected position`);
        continue;
      }
      const p: Position = want.position;
      const got = {
        net: dec(row.net_quantity),
        bought: dec(row.bought_quantity),
        sold: dec(row.sold_quantity),
        boughtNotional: dec(row.bought_notional),
        soldNotional: dec(row.sold_notional),
        count: Number(row.trade_count),
        lastSeq: Number(row.last_seq),
        digest: row.digest,
        dead: deadBy.get(pk) ?? 0,
      };
      const exp = {
        net: p.netQuantity,
        bought: p.boughtQuantity,
        sold: p.soldQuantity,
        boughtNotional: p.boughtNotional,
        soldNotional: p.soldNotional,
        count: p.tradeCount,
        lastSeq: p.lastSeq,
        digest: p.digest,
        dead: want.deadLetters,
      };
      if (JSON.stringify(got) !== JSON.stringify(exp))
        problems.push(`${pk}: got ${JSON.stringify(got)} expected ${JSON.stringify(exp)}`);
    }
    return { rows, expected, problems: problems.slice(0, limit) };
  } finally {
    await db.end();
  }
}
