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
