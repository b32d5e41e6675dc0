/**
 * The real producer process (node --import tsx src/producer/main.ts) on a free
 * port: it answers over HTTP, and SIGTERM shuts it down gracefully with exit 0.
 */
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';

import IORedis from 'ioredis';

import { createDb, migrateToLatest } from '../../src/db';
import { QueueKeys, readSignals } from '../../src/queue';
import { createTestDatabase, redisUrl, testNamespace, type TestDatabase } from '../helpers/isolation';
import { exited, spawnTs, stopAll, waitFor } from '../helpers/processes';
import { freePort } from '../helpers/servers';

let database: TestDatabase;
let probe: IORedis;

beforeAll(async () => {
  database = await createTestDatabase();
  const handle = createDb({ databaseUrl: database.url, poolSize: 2 });
  await migrateToLatest(handle.db);
  await handle.close();
  probe = new IORedis(redisUrl(), { maxRetriesPerRequest: null });
});

afterAll(async () => {
  await stopAll();
  await probe.quit();
  await database.drop();
});

function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return exited(child).then(() => ({ code: child.exitCode, signal: child.signalCode }));
}

interface Started {
  child: ChildProcess;
  base: string;
  port: number;
  namespace: string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function startProducer(label: string, env: Record<string, string> = {}): Promise<Started> {
  const namespace = testNamespace(label);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = spawnTs('src/producer/main.ts', {
    REDIS_URL: redisUrl(),
    DATABASE_URL: database.url,
    PORT: String(port),
    HOST: '127.0.0.1',
    TRADEFLEET_NAMESPACE: namespace,
    LOG_LEVEL: 'warn',
    SHUTDOWN_TIMEOUT_MS: '5000',
    ...env,
  });
  const stderrTail = () => (child as ChildProcess & { stderrTail?: () => string }).stderrTail?.() ?? '';
  const exit = exitOf(child);
  await waitFor(
    'the producer to become ready',
    async () => {
      if (child.exitCode !== null)
        throw new Error(`producer exited early (${child.exitCode}): ${stderrTail()}`);
      const res = await fetch(`${base}/readyz`).catch(() => undefined);
      return res?.status === 200;
    },
    30_000,
    100,
  );
  return { child, base, port, namespace, exit };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tradeBody(tradeId: string): string {
  return JSON.stringify({
    tradeId,
    type: 'NEW',
    accountId: 'ACC-1',
    bookId: 'BOOK-1',
    securityId: 'SEC-1',
    side: 'SELL',
    quantity: '5',
    price: '10.5',
    currency: 'EUR',
    tradeTime: '2026-11-22T10:15:30Z',
  });
}

/**
 * A POST whose body is sent in two halves over a raw socket, so that the test
 * decides when the request is in flight. Returns a function that sends the
 * rest and resolves with the raw response.
 */
async function startSlowPost(port: number, body: string): Promise<() => Promise<string>> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let response = '';
  socket.on('data', (d: Buffer) => (response += d.toString()));
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => undefined);
  const half = Math.floor(body.length / 2);
  socket.write(
    `POST /v1/trades HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: keep-alive\r\n\r\n${body.slice(0, half)}`,
  );
  await sleep(200);
  return async () => {
    socket.write(body.slice(half));
    await ended;
    return response;
  };
}

test('graceful-shutdown: the real process accepts trades over HTTP and exits 0 on SIGTERM', async () => {
  const { child, base, namespace, exit } = await startProducer('producer-process');

  const trade = {
    tradeId: 'T-process-1',
    type: 'NEW',
    accountId: 'ACC-1',
    bookId: 'BOOK-1',
    securityId: 'SEC-1',
    side: 'SELL',
    quantity: '5',
    price: '10.5',
    currency: 'EUR',
    tradeTime: '2026-11-22T10:15:30Z',
  };
  const res = await fetch(`${base}/v1/trades`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(trade),
  });
  expect(res.status).toBe(202);
  expect(await res.json()).toEqual({
    tradeId: 'T-process-1',
    partitionKey: 'ACC-1_BOOK-1_SEC-1',
    seq: 1,
    status: 'queued',
  });
  expect((await readSignals(probe, new QueueKeys(namespace))).backlog).toBe(1);

  const lookup = await fetch(`${base}/v1/trades/T-process-1`);
  expect(await lookup.json()).toMatchObject({ state: 'queued', seq: 1 });

  const bad = await fetch(`${base}/v1/trades`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain' },
    body: 'hello',
  });
  expect(bad.status).toBe(415);
  expect(await bad.json()).toMatchObject({ error: { code: 'unsupported_media_type' } });

  child.kill('SIGTERM');
  expect(await exit).toEqual({ code: 0, signal: null });
  await expect(fetch(`${base}/healthz`)).rejects.toThrow();
});

test('graceful-shutdown: a request in flight at SIGTERM completes; new connections are refused', async () => {
  const { child, base, port, namespace, exit } = await startProducer('producer-drain');
  const finish = await startSlowPost(port, tradeBody('T-in-flight'));

  child.kill('SIGTERM');
  await sleep(300);
  await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  expect(child.exitCode).toBeNull();

  const response = await finish();
  expect(response).toMatch(/^HTTP\/1\.1 202 /);
  expect(response.toLowerCase()).toContain('connection: close');
  expect(response).toContain('"tradeId":"T-in-flight"');
  expect(await exit).toEqual({ code: 0, signal: null });
  expect((await readSignals(probe, new QueueKeys(namespace))).backlog).toBe(1);
});

test('graceful-shutdown: a second signal exits at once, without waiting for the drain', async () => {
  const { child, port, exit } = await startProducer('producer-force', { SHUTDOWN_TIMEOUT_MS: '60000' });
  await startSlowPost(port, tradeBody('T-never-finished'));
  child.kill('SIGTERM');
  await sleep(300);
  expect(child.exitCode).toBeNull();
  const started = Date.now();
  child.kill('SIGINT');
  expect(await exit).toEqual({ code: 1, signal: null });
  expect(Date.now() - started).toBeLessThan(3000);
});
