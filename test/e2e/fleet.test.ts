/**
 * The whole fleet through the `tradefleet` CLI against real Redis and
 * PostgreSQL: producer + worker processes, trades posted over HTTP, positions
 * checked through the API and the database against the fold of each
 * partition's trades in seq order. Also: SIGTERM under load, and a PostgreSQL
 * restart in the middle of the run.
 */
import type { ChildProcess } from 'node:child_process';
import IORedis from 'ioredis';
import { Client } from 'pg';
import { canonicalDecimalString, type Position } from '../../src/domain';
import { QueueKeys, readSignals } from '../../src/queue';
import { createTestDatabase, redisUrl, testNamespace, type TestDatabase } from '../helpers/isolation';
import { exitCode, outputOf, spawnCli, stopAll, waitFor } from '../helpers/processes';
import { freePort, startPostgres } from '../helpers/servers';
import { expectedPositions, generateTrades } from '../helpers/trades';

jest.setTimeout(240_000);

let redis: IORedis;
beforeAll(() => {
  redis = new IORedis(redisUrl(), { maxRetriesPerRequest: null });
});
afterEach(() => stopAll(15_000));
afterAll(() => redis.quit());

interface Fleet {
  api: string;
  env: Record<string, string>;
  producer: ChildProcess;
  workers: ChildProcess[];
  keys: QueueKeys;
}

async function startFleet(
  databaseUrl: string,
  workers: number,
  extraEnv: Record<string, string> = {},
): Promise<Fleet> {
  const port = await freePort();
  const namespace = testNamespace('fleet');
  const env = {
    REDIS_URL: redisUrl(),
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
  const producer = spawnCli(['producer'], env);
  const api = `http://127.0.0.1:${port}`;
  await waitFor(
    'the producer to be ready',
    async () => (await fetch(`${api}/readyz`).catch(() => undefined))?.ok,
    60_000,
    200,
  );
  const ws = Array.from({ length: workers }, () => spawnCli(['worker'], env));
  return { api, env, producer, workers: ws, keys: new QueueKeys(namespace) };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the JSON of several response shapes
async function post(api: string, path: string, body: unknown): Promise<{ status: number; body: any }> {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(api + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if ((res.status === 429 || res.status === 503) && attempt < 50) {
      await new Promise((r) => setTimeout(r, 200));
      continue;
    }
    return { status: res.status, body: await res.json() };
  }
}

/** Posts the trades (the first `singles` one by one, the rest in batches) and returns tradeId -> seq. */
async function postAll(
  api: string,
  trades: Record<string, unknown>[],
  singles: number,
  batchSize = 250,
): Promise<Map<string, number>> {
  const seqs = new Map<string, number>();
  for (const t of trades.slice(0, singles)) {
    const r = await post(api, '/v1/trades', t);
    expect([202, 200]).toContain(r.status);
    seqs.set(t.tradeId as string, r.body.seq);
  }
  for (let i = singles; i < trades.length; i += batchSize) {
    const chunk = trades.slice(i, i + batchSize);
    const r = await post(api, '/v1/trades/batch', { trades: chunk });
    expect(r.body.summary.invalid).toBe(0);
    r.body.results.forEach((x: { tradeId: string; seq: number; status: string }) => {
      expect(x.status === 'queued' || x.status === 'duplicate').toBe(true);
      if (!seqs.has(x.tradeId)) seqs.set(x.tradeId, x.seq);
    });
  }
  return seqs;
}

const dec = (s: string) => canonicalDecimalString(s);

async function checkPositions(
  fleet: Fleet,
  databaseUrl: string,
  trades: Record<string, unknown>[],
  seqs: Map<string, number>,
) {
  const expected = expectedPositions(trades, seqs);
  const db = new Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    const rows = (await db.query('select * from positions')).rows;
    const dead = (
      await db.query('select partition_key, count(*)::int as n from dead_letters group by partition_key')
    ).rows;
    const applied = (
      await db.query('select count(*)::int as n, count(distinct trade_id)::int as d from trades')
    ).rows[0];
    expect(applied.n).toBe(applied.d);
    const deadBy = new Map(dead.map((d) => [d.partition_key as string, d.n as number]));
    expect(rows).toHaveLength(expected.size);
    const mismatches: string[] = [];
    for (const row of rows) {
      const want = expected.get(row.partition_key);
      if (!want) {
        mismatches.push(`${row.partition_key}: unexpected position`);
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
        dead: deadBy.get(row.partition_key) ?? 0,
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
        mismatches.push(`${row.partition_key}: got ${JSON.stringify(got)} expected ${JSON.stringify(exp)}`);
    }
    expect(mismatches.slice(0, 5)).toEqual([]);
    return { rows, expected };
  } finally {
    await db.end();
  }
}

async function drained(fleet: Fleet, timeoutMs = 120_000) {
  await waitFor(
    'the fleet to drain the backlog',
    async () => (await readSignals(redis, fleet.keys)).backlog === 0,
    timeoutMs,
    200,
  );
}

describe('fleet end to end', () => {
  let database: TestDatabase;
  beforeEach(async () => {
    database = await createTestDatabase();
  });
  afterEach(() => database.drop());

  test('20,000 trades over 300 partitions (singles, batches, duplicates, AMENDs, CANCELs) through producer and 3 workers: every position equals the fold in seq order', async () => {
    const fleet = await startFleet(database.url, 3);
    const { trades } = generateTrades(20_000, 300);
    const seqs = await postAll(fleet.api, trades, 500);
    // Duplicates: the same payloads again, singly and in a batch, give the first seq back.
    const again = trades.slice(100, 400);
    for (const t of again.slice(0, 50)) {
      const r = await post(fleet.api, '/v1/trades', t);
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ duplicate: true, seq: seqs.get(t.tradeId as string) });
    }
    const batch = await post(fleet.api, '/v1/trades/batch', { trades: again.slice(50) });
    expect(batch.body.summary.duplicate).toBe(250);

    await drained(fleet);
    const { rows, expected } = await checkPositions(fleet, database.url, trades, seqs);

    // The API tells the same story as the database.
    for (const row of rows.slice(0, 40)) {
      const res = await fetch(
        `${fleet.api}/v1/positions/${encodeURIComponent(row.account_id)}/${encodeURIComponent(row.book_id)}/${encodeURIComponent(row.security_id)}`,
      );
      const body = (await res.json()) as {
        lastSeq: number;
        tradeCount: number;
        digest: string;
        netQuantity: string;
      };
      const want = expected.get(row.partition_key)!.position;
      expect({
        lastSeq: body.lastSeq,
        tradeCount: body.tradeCount,
        digest: body.digest,
        net: dec(body.netQuantity),
      }).toEqual({
        lastSeq: want.lastSeq,
        tradeCount: want.tradeCount,
        digest: want.digest,
        net: want.netQuantity,
      });
    }
    const applied = await (await fetch(`${fleet.api}/v1/trades/${trades[0]!.tradeId}`)).json();
    expect(applied).toMatchObject({ tradeId: trades[0]!.tradeId, state: 'applied' });
    const db = new Client({ connectionString: database.url });
    await db.connect();
    const dl = (await db.query('select trade_id, reason_code from dead_letters limit 1')).rows[0];
    await db.end();
    expect(dl).toBeDefined(); // the generator amends and cancels some cancelled trades
    const deadLettered = await (await fetch(`${fleet.api}/v1/trades/${dl.trade_id}`)).json();
    expect(deadLettered).toMatchObject({ state: 'dead_lettered' });

    // Workers stop cleanly.
    for (const w of fleet.workers) w.kill('SIGTERM');
    for (const w of fleet.workers) expect(await exitCode(w)).toBe(0);
  });

  test('graceful-shutdown: SIGTERM to workers under load loses and duplicates nothing', async () => {
    const fleet = await startFleet(database.url, 2);
    const { trades } = generateTrades(6000, 100, 11, 'G');
    const posting = postAll(fleet.api, trades, 0, 100);
    await new Promise((r) => setTimeout(r, 1500));
    // Replace each worker in turn while trades keep coming.
    for (const old of [...fleet.workers]) {
      old.kill('SIGTERM');
      expect(await exitCode(old)).toBe(0);
      fleet.workers.push(spawnCli(['worker'], fleet.env));
      await new Promise((r) => setTimeout(r, 500));
    }
    const seqs = await posting;
    await drained(fleet);
    await checkPositions(fleet, database.url, trades, seqs);
  });
});

test('postgres-restart: workers pause while PostgreSQL is down, then finish with nothing lost', async () => {
  const pg = await startPostgres();
  try {
    const admin = new Client({ connectionString: pg.url });
    await admin.connect();
    await admin.query('create database fleet');
    await admin.end();
    const url = pg.url.replace(/\/postgres$/, '/fleet');
    const fleet = await startFleet(url, 2);
    const { trades } = generateTrades(5000, 80, 13, 'R');
    const seqs = await postAll(fleet.api, trades.slice(0, 2500), 0, 250);
    await new Promise((r) => setTimeout(r, 300));
    await pg.kill('SIGKILL');
    // Trades keep being accepted while the database is down: the queue holds them.
    for (const [k, v] of await postAll(fleet.api, trades.slice(2500), 0, 250)) seqs.set(k, v);
    await new Promise((r) => setTimeout(r, 3000));
    expect((await readSignals(redis, fleet.keys)).backlog).toBeGreaterThan(0);
    await pg.restart();
    await drained(fleet).catch((e) => {
      // Say what the workers were doing when they did not finish.
      throw new Error(
        `${(e as Error).message}\n${fleet.workers.map((w) => `--- worker ${w.pid} exit ${w.exitCode}\n${outputOf(w).slice(-4000)}`).join('\n')}`,
      );
    });
    await checkPositions(fleet, url, trades, seqs);
    for (const w of fleet.workers)
      expect({ exit: w.exitCode, output: w.exitCode === null ? '' : outputOf(w).slice(-3000) }).toEqual({
        exit: null,
        output: '',
      }); // they waited, they did not die
  } finally {
    await stopAll(15_000);
    await pg.stop();
  }
});
