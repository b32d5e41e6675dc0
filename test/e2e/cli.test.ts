/**
 * The `tradefleet` command as a user runs it: `dev` brings the fleet up (here
 * on the harness's Redis and PostgreSQL through REDIS_URL / DATABASE_URL),
 * `enqueue` posts an NDJSON file, `inspect` reports the queue, Ctrl-C stops it
 * all; a missing server binary gets a message naming what to install.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createTestDatabase, redisUrl, testNamespace } from '../helpers/isolation';
import { exitCode, outputOf, spawnCli, stopAll, waitFor } from '../helpers/processes';
import { freePort } from '../helpers/servers';
import { generateTrades } from '../helpers/trades';

jest.setTimeout(180_000);
afterEach(() => stopAll(15_000));

test('dev + enqueue + inspect: an NDJSON file goes through the fleet and inspect shows an empty backlog', async () => {
  const database = await createTestDatabase();
  try {
    const port = await freePort();
    const env = {
      REDIS_URL: redisUrl(),
      DATABASE_URL: database.url,
      TRADEFLEET_NAMESPACE: testNamespace('cli'),
    };
    const dev = spawnCli(['dev', '--port', String(port), '--workers', '2'], env);
    await waitFor(
      'tradefleet dev to be up',
      () => outputOf(dev).includes('tradefleet dev is up'),
      90_000,
      200,
    );

    const dir = mkdtempSync(join(tmpdir(), 'tf-cli-'));
    const file = join(dir, 'trades.ndjson');
    const { trades } = generateTrades(3000, 40, 5, 'C');
    writeFileSync(file, trades.map((t) => JSON.stringify(t)).join('\n') + '\n{not json}\n');
    const enqueue = spawnCli(['enqueue', file, '--url', `http://127.0.0.1:${port}`, '--batch', '400'], env);
    expect(await exitCode(enqueue)).toBe(1); // one line is not JSON
    expect(outputOf(enqueue)).toMatch(/3000 queued, 0 duplicate, 0 conflict, 1 invalid, 0 failed requests/);
    expect(outputOf(enqueue)).toMatch(/line 3001: not JSON/);

    const report = await waitFor(
      'inspect to show an empty backlog',
      async () => {
        const inspect = spawnCli(['inspect', '--json'], env);
        if ((await exitCode(inspect)) !== 0) throw new Error(outputOf(inspect));
        const r = JSON.parse(outputOf(inspect));
        return r.signals.backlog === 0 ? r : undefined;
      },
      60_000,
      500,
    );
    expect(report.signals).toMatchObject({ backlog: 0, pendingPartitions: 0, haltedPartitions: 0 });
    expect(Array.isArray(report.deadLetters)).toBe(true);

    dev.kill('SIGINT');
    expect(await exitCode(dev)).toBe(0);
  } finally {
    await database.drop();
  }
});

test('dev names what to install when redis-server is missing', async () => {
  const dev = spawnCli(['dev'], { PATH: dirname(process.execPath), REDIS_SERVER_BIN: '' });
  expect(await exitCode(dev)).toBe(1);
  expect(outputOf(dev)).toMatch(
    /redis-server not found on PATH\. Install it \(Debian\/Ubuntu: apt-get install redis-server/,
  );
});

test('partition show / skip-head / resume: an operator clears a halted partition from the command line', async () => {
  const database = await createTestDatabase();
  try {
    const port = await freePort();
    const env = {
      REDIS_URL: redisUrl(),
      DATABASE_URL: database.url,
      TRADEFLEET_NAMESPACE: testNamespace('ops'),
      PERMANENT_FAILURE_POLICY: 'halt',
    };
    const dev = spawnCli(['dev', '--port', String(port), '--workers', '1'], env);
    await waitFor(
      'tradefleet dev to be up',
      () => outputOf(dev).includes('tradefleet dev is up'),
      90_000,
      200,
    );
    const ids = {
      accountId: 'OPS',
      bookId: 'B1',
      securityId: 'S1',
      tradeTime: '2026-11-22T10:00:00Z',
      currency: 'USD',
    };
    const trades = [
      { ...ids, tradeId: 'N1', type: 'NEW', side: 'BUY', quantity: '10', price: '2' },
      { ...ids, tradeId: 'A1', type: 'AMEND', refTradeId: 'NOPE', side: 'BUY', quantity: '5', price: '2' },
      { ...ids, tradeId: 'N2', type: 'NEW', side: 'SELL', quantity: '3', price: '2' },
    ];
    const res = await fetch(`http://127.0.0.1:${port}/v1/trades/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ trades }),
    });
    expect(res.status).toBe(202);
    const pk = 'OPS_B1_S1';
    const show = async () => {
      const c = spawnCli(['partition', 'show', pk], env);
      expect(await exitCode(c)).toBe(0);
      return JSON.parse(outputOf(c));
    };
    const halted = await waitFor('the partition to halt on the AMEND of an unknown trade', async () => {
      const s = await show();
      return s.halted ? s : undefined;
    });
    expect(halted.halted).toMatchObject({ code: 'unknown_ref', tradeId: 'A1', seq: 2 });
    expect(halted.head.map((h: { seq: number }) => h.seq)).toEqual([2, 3]);
    expect(halted.position).toMatchObject({ lastSeq: 1, netQuantity: '10' });

    const wrong = spawnCli(['partition', 'skip-head', pk, '--seq', '3'], env);
    expect(await exitCode(wrong)).toBe(1);
    expect(outputOf(wrong)).toMatch(/the head of OPS_B1_S1 is seq 2, not seq 3/);
    const skip = spawnCli(
      ['partition', 'skip-head', pk, '--seq', '2', '--reason', 'bad ref, booked by hand'],
      env,
    );
    expect(await exitCode(skip)).toBe(0);
    const resume = spawnCli(['partition', 'resume', pk], env);
    expect(await exitCode(resume)).toBe(0);

    const done = await waitFor('the rest to apply', async () => {
      const s = await show();
      return s.position?.lastSeq === 3 ? s : undefined;
    });
    expect(done).toMatchObject({ halted: null, head: [], position: { netQuantity: '7', tradeCount: 2 } });
    const letter = await (await fetch(`http://127.0.0.1:${port}/v1/trades/A1`)).json();
    expect(letter).toMatchObject({
      state: 'dead_lettered',
      reasonCode: 'operator_skip',
      reason: 'bad ref, booked by hand',
    });
    dev.kill('SIGINT');
    expect(await exitCode(dev)).toBe(0);
  } finally {
    await database.drop();
  }
});

test('a worker and a producer stopped while still starting exit 0 (SIGTERM during start-up)', async () => {
  const database = await createTestDatabase();
  try {
    const port = await freePort();
    const env = {
      REDIS_URL: redisUrl(),
      DATABASE_URL: database.url,
      TRADEFLEET_NAMESPACE: testNamespace('early'),
      PORT: String(port),
    };
    const migrate = spawnCli(['migrate'], env);
    expect(await exitCode(migrate)).toBe(0);
    for (const cmd of ['worker', 'producer']) {
      const child = spawnCli([cmd], env);
      await new Promise((r) => setTimeout(r, 150)); // still loading its modules
      child.kill('SIGTERM');
      expect({ cmd, code: await exitCode(child) }).toEqual({ cmd, code: 0 });
    }
  } finally {
    await database.drop();
  }
});
