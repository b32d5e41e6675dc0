/**
 * The whole fleet through the `tradefleet` CLI against real Redis and
 * PostgreSQL: producer + worker processes, trades posted over HTTP, positions
 * checked through the API and the database against the fold of each
 * partition's trades in seq order. Also: SIGTERM under load, and a PostgreSQL
 * restart in the middle of the run.
 */
import IORedis from 'ioredis';
import { Client } from 'pg';
import { canonicalDecimalString } from '../../src/domain';
import { readSignals } from '../../src/queue';
import { checkPositionsAgainstFold, startFleet, waitDrained, type Fleet } from '../helpers/fleet';
import { createTestDatabase, redisUrl, type TestDatabase } from '../helpers/isolation';
import { exitCode, outputOf, spawnCli, stopAll } from '../helpers/processes';
import { startPostgres } from '../helpers/servers';
import { generateTrades } from '../helpers/trades';

jest.setTimeout(240_000);

let redis: IORedis;
beforeAll(() => {
  redis = new IORedis(redisUrl(), { maxRetriesPerRequest: null });
});
afterEach(() => stopAll(15_000));
afterAll(() => redis.quit());

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
  _fleet: Fleet,
  databaseUrl: string,
  trades: Record<string, unknown>[],
  seqs: Map<string, number>,
) {
  const { rows, expected, problems } = await checkPositionsAgainstFold(databaseUrl, trades, seqs, 5);
  expect(problems).toEqual([]);
  return { rows, expected };
}

const drained = (fleet: Fleet, timeoutMs = 120_000) => waitDrained(redis, fleet.keys, timeoutMs);

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
