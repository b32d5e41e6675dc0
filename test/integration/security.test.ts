/**
 * Security of the producer against real Redis and PostgreSQL:
 *
 * - per-client rate limiting (token bucket in trades per second): a client's
 *   burst passes, the rest answers 429 rate_limited with Retry-After before
 *   the body is read and enqueues nothing, a batch counts its trades, each
 *   token (or, without auth, each IP address) has its own bucket;
 * - the dashboard accepts the API's bearer tokens, with the access of a
 *   logged-in user (read-only mode still refuses actions);
 * - secrets never leak: the producer, `tradefleet migrate` and a worker run as
 *   processes against a TLS-only, password-protected Redis and PostgreSQL with
 *   API tokens, at debug level, through auth failures, rate limits, bad input
 *   and a bad configuration, and none of their output, no response body or
 *   header, and no synthesized manifest contains a configured secret.
 */
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';

import type { FastifyInstance } from 'fastify';
import IORedis from 'ioredis';
import { sql } from 'kysely';

import { renderEnvironment } from '../../cdk8s/charts';
import { ENVIRONMENTS } from '../../cdk8s/config';
import { loadProducerConfig } from '../../src/config';
import { createDb, migrateToLatest, type DbHandle } from '../../src/db';
import { partitionKey } from '../../src/domain';
import { createLogger } from '../../src/observability/logger';
import { buildProducerApp, producerRedisOptions, tokenId } from '../../src/producer';
import type { RateLimitConfig } from '../../src/config';
import { PartitionAdmin, PartitionQueue, readSignals } from '../../src/queue';
import { createTestDatabase, redisUrl, testNamespace, type TestDatabase } from '../helpers/isolation';
import { exitCode, outputOf, spawnCli, stopAll, waitFor } from '../helpers/processes';
import {
  freePort,
  startPostgres,
  startRedis,
  type PostgresServer,
  type RedisServer,
} from '../helpers/servers';
import { haveOpenssl, makeTestCerts, type TestCerts } from '../helpers/tls';

const TOKEN = 'client-token-A-0123456789abcdef';
const OTHER_TOKEN = 'client-token-B-0123456789abcdef';

let database: TestDatabase;
let dbHandle: DbHandle;
let redis: IORedis;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  dbHandle = createDb({ databaseUrl: database.url, poolSize: 4 });
  await migrateToLatest(dbHandle.db);
  // Like the producer's own client: no offline queue, so wait until it is connected.
  redis = new IORedis(redisUrl(), producerRedisOptions());
  if (redis.status !== 'ready') await once(redis, 'ready');
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

afterAll(async () => {
  await stopAll();
  await redis.quit();
  await dbHandle.close();
  await database.drop();
});

interface Api {
  app: FastifyInstance;
  url: string;
  queue: PartitionQueue;
  admin: PartitionAdmin;
  logs: Record<string, unknown>[];
  backlog(): Promise<number>;
}

async function startApi(opts: {
  tokens?: string[];
  rateLimit?: RateLimitConfig;
  maxInflightRequests?: number;
  dashboard?: { readOnly: boolean };
}): Promise<Api> {
  const namespace = testNamespace('security');
  const queue = new PartitionQueue({ redis, namespace });
  const admin = new PartitionAdmin(redis, namespace);
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n'))
        if (line.trim()) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const app = buildProducerApp({
    queue,
    redis,
    db: dbHandle.db,
    config: loadProducerConfig({ TRADEFLEET_NAMESPACE: namespace, BATCH_MAX_TRADES: '100' }),
    logger: createLogger({ level: 'info', name: 'security-test', destination: sink }),
    ...(opts.tokens ? { authTokens: opts.tokens } : {}),
    ...(opts.rateLimit ? { rateLimit: opts.rateLimit } : {}),
    ...(opts.maxInflightRequests ? { maxInflightRequests: opts.maxInflightRequests } : {}),
    ...(opts.dashboard
      ? {
          dashboard: {
            user: 'admin',
            password: 'dashboard-password-123',
            readOnly: opts.dashboard.readOnly,
            admin,
          },
        }
      : {}),
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  cleanups.push(async () => {
    await app.close();
  });
  return {
    app,
    url,
    queue,
    admin,
    logs,
    backlog: async () => (await readSignals(redis, queue.keys)).backlog,
  };
}

let n = 0;
function trade(p = 'rl'): Record<string, unknown> {
  n += 1;
  return {
    tradeId: `SEC-${process.pid}-${n}`,
    type: 'NEW',
    accountId: `ACC-${p}`,
    bookId: 'BOOK',
    securityId: 'SEC',
    side: 'BUY',
    quantity: '1',
    price: '1.5',
    currency: 'EUR',
    tradeTime: '2026-11-22T10:15:30Z',
  };
}

async function post(
  api: Api,
  route: string,
  body: unknown,
  token?: string,
): Promise<{ status: number; retryAfter: string | null; body: Record<string, unknown> }> {
  const res = await fetch(`${api.url}${route}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return {
    status: res.status,
    retryAfter: res.headers.get('retry-after'),
    body: (await res.json()) as Record<string, unknown>,
  };
}

describe('rate limiting', () => {
  it("a client's burst passes, then 429 rate_limited with Retry-After and nothing enqueued; each token has its own bucket", async () => {
    const api = await startApi({ tokens: [TOKEN, OTHER_TOKEN], rateLimit: { perSecond: 2, burst: 5 } });
    for (let i = 0; i < 5; i++) expect((await post(api, '/v1/trades', trade(), TOKEN)).status).toBe(202);
    const refused = await post(api, '/v1/trades', trade(), TOKEN);
    expect(refused.status).toBe(429);
    expect(refused.retryAfter).toBe('1');
    expect(refused.body).toMatchObject({ error: { code: 'rate_limited' } });
    expect(String((refused.body.error as { message: string }).message)).toMatch(
      /at most 2 per second \(burst 5\) per producer replica; nothing was enqueued/,
    );
    expect(await api.backlog()).toBe(5);
    // Another client is not affected; reads count too, probes and metrics do not.
    expect((await post(api, '/v1/trades', trade(), OTHER_TOKEN)).status).toBe(202);
    const read = await fetch(`${api.url}/v1/trades/none`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(read.status).toBe(429);
    expect((await fetch(`${api.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${api.url}/readyz`)).status).toBe(200);
    expect(
      (await fetch(`${api.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).status,
    ).toBe(200);
    // Refused before the body is read: a malformed body is not even looked at.
    expect((await post(api, '/v1/trades', '{oops', TOKEN)).body).toMatchObject({
      error: { code: 'rate_limited' },
    });
    // The bucket refills at the rate.
    await new Promise((r) => setTimeout(r, 600));
    expect((await post(api, '/v1/trades', trade(), TOKEN)).status).toBe(202);
    // Refusals are summarized (one line with the client's short id), never logged one by one,
    // and no log line names the token.
    const lines = api.logs.filter((l) => String(l.msg).startsWith('rate limit:'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'warn', client: `token:${tokenId(TOKEN)}` });
    expect(api.logs.filter((l) => l.code === 'rate_limited')).toEqual([]);
    const text = JSON.stringify(api.logs);
    expect(text).not.toContain(TOKEN);
    expect(text).not.toContain(OTHER_TOKEN);
  });

  it('a batch counts its trades: one larger than the burst passes, and its client then waits its debt', async () => {
    const api = await startApi({ tokens: [TOKEN], rateLimit: { perSecond: 10, burst: 10 } });
    const batch = await post(
      api,
      '/v1/trades/batch',
      { trades: Array.from({ length: 30 }, () => trade()) },
      TOKEN,
    );
    expect(batch.status).toBe(202);
    const next = await post(api, '/v1/trades', trade(), TOKEN);
    expect(next.status).toBe(429);
    // 30 trades at 10/s with a bucket of 10: about 2 s of debt.
    expect(Number(next.retryAfter)).toBeGreaterThanOrEqual(2);
    expect(Number(next.retryAfter)).toBeLessThanOrEqual(3);
    expect(await api.backlog()).toBe(30);
  });

  it('without auth, clients are told apart by IP address', async () => {
    const api = await startApi({ rateLimit: { perSecond: 1, burst: 2 } });
    expect((await post(api, '/v1/trades', trade())).status).toBe(202);
    expect((await post(api, '/v1/trades', trade())).status).toBe(202);
    expect((await post(api, '/v1/trades', trade())).status).toBe(429);
    // A token means nothing when auth is off: same address, same bucket.
    expect((await post(api, '/v1/trades', trade(), TOKEN)).status).toBe(429);
  });
});

describe('load shedding', () => {
  /** A POST whose body is held back: the request stays in flight until finish() sends the rest. */
  async function slowPost(api: Api, body: string): Promise<{ finish(): Promise<string>; abort(): void }> {
    const port = Number(new URL(api.url).port);
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    let response = '';
    socket.on('data', (d: Buffer) => (response += d.toString()));
    socket.on('error', () => undefined);
    socket.write(
      `POST /v1/trades HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer ${TOKEN}\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body.slice(0, 10)}`,
    );
    return {
      async finish() {
        socket.write(body.slice(10));
        await once(socket, 'close');
        return response;
      },
      abort: () => socket.destroy(),
    };
  }

  it('past MAX_INFLIGHT_REQUESTS, /v1 requests answer 503 overloaded at once; probes still answer; capacity comes back', async () => {
    const api = await startApi({ tokens: [TOKEN], maxInflightRequests: 2 });
    const held = [await slowPost(api, JSON.stringify(trade())), await slowPost(api, JSON.stringify(trade()))];
    await new Promise((r) => setTimeout(r, 100));
    const shed = await post(api, '/v1/trades', trade(), TOKEN);
    expect(shed.status).toBe(503);
    expect(shed.retryAfter).toBe('1');
    expect(shed.body).toMatchObject({ error: { code: 'overloaded' } });
    // Even an unauthenticated request is shed before anything else is done.
    expect((await post(api, '/v1/trades', trade())).body).toMatchObject({ error: { code: 'overloaded' } });
    expect((await fetch(`${api.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${api.url}/readyz`)).status).toBe(200);
    for (const h of held) expect(await h.finish()).toMatch(/^HTTP\/1\.1 202 /);
    expect((await post(api, '/v1/trades', trade(), TOKEN)).status).toBe(202);
    // Clients that give up mid-request free their places too.
    const gone = [await slowPost(api, JSON.stringify(trade())), await slowPost(api, JSON.stringify(trade()))];
    await new Promise((r) => setTimeout(r, 100));
    expect((await post(api, '/v1/trades', trade(), TOKEN)).status).toBe(503);
    for (const g of gone) g.abort();
    await new Promise((r) => setTimeout(r, 100));
    expect((await post(api, '/v1/trades', trade(), TOKEN)).status).toBe(202);
    // One summary line, not one per refusal.
    expect(api.logs.filter((l) => String(l.msg).startsWith('overloaded:'))).toHaveLength(1);
    expect(await api.backlog()).toBe(4);
  });
});

describe('dashboard with API bearer tokens', () => {
  const bearer = { authorization: `Bearer ${TOKEN}` };

  it('opens the dashboard with the access of a logged-in user; no CSRF token is needed for an action', async () => {
    const api = await startApi({ tokens: [TOKEN], dashboard: { readOnly: false } });
    const page = await fetch(`${api.url}/dashboard`, { headers: { ...bearer, accept: 'text/html' } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain(`token:${tokenId(TOKEN)}`);
    expect(html).not.toContain(TOKEN);
    expect(
      (await fetch(`${api.url}/dashboard`, { headers: { authorization: `Bearer ${TOKEN}x` } })).status,
    ).toBe(401);
    // The API's token does not need the dashboard password, and the password is no API token.
    const pk = partitionKey('ACC-dash', 'BOOK', 'SEC');
    await api.admin.halt(pk, { code: 'test', message: 'bearer test' });
    const res = await fetch(`${api.url}/dashboard/actions/resume`, {
      method: 'POST',
      headers: {
        ...bearer,
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      },
      body: new URLSearchParams({ partitionKey: pk }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ok: true });
    expect(await redis.hexists(api.queue.keys.halted, pk)).toBe(0);
    // A cross-origin page cannot use it either (same-origin check first).
    const cross = await fetch(`${api.url}/dashboard/actions/halt`, {
      method: 'POST',
      headers: {
        ...bearer,
        'content-type': 'application/x-www-form-urlencoded',
        origin: 'https://evil.example',
      },
      body: new URLSearchParams({ partitionKey: pk }),
    });
    expect(cross.status).toBe(403);
  });

  it('read-only mode refuses actions to a bearer token too', async () => {
    const api = await startApi({ tokens: [TOKEN], dashboard: { readOnly: true } });
    const pk = partitionKey('ACC-ro', 'BOOK', 'SEC');
    await api.admin.halt(pk, { code: 'test', message: 'read-only' });
    const res = await fetch(`${api.url}/dashboard/actions/resume`, {
      method: 'POST',
      headers: { ...bearer, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ partitionKey: pk }),
    });
    expect(res.status).toBe(403);
    expect(await redis.hexists(api.queue.keys.halted, pk)).toBe(1);
    await api.admin.resume(pk);
  });
});

// ---------------------------------------------------------------------------
// No secret in logs, errors or manifests

const SECRET = {
  apiToken: 'ApiTok3n-Zq8x-unique-6f1d2c9b8a7e',
  otherApiToken: 'ApiTok3n-Wy5v-unique-0a9b8c7d6e5f',
  redisPassword: 'RedisPw-Hk4m-unique-91ce3ab0',
  pgPassword: 'PgPw-Lt7n-unique-52fd81c4',
  dashboardPassword: 'DashPw-Rj2p-unique-7e3c',
  /** Presented by a client, never configured: must not be echoed either. */
  wrongToken: 'WrongTok-Xe9s-unique-13579bdf',
};

const describeTls = haveOpenssl() ? describe : describe.skip;

describeTls('no secret in any log line, error response or manifest', () => {
  let dir: string;
  let certs: TestCerts;
  let tlsRedis: RedisServer;
  let tlsPg: PostgresServer;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tf-secrets-'));
    certs = makeTestCerts(dir);
    [tlsRedis, tlsPg] = await Promise.all([
      startRedis({ password: SECRET.redisPassword, tls: certs }),
      startPostgres({ password: SECRET.pgPassword, tls: certs }),
    ]);
  });

  afterAll(async () => {
    await stopAll();
    await Promise.allSettled([tlsRedis?.stop(), tlsPg?.stop()]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('producer, migrate and worker processes, their error responses and the manifests never show a secret', async () => {
    const tokensFile = path.join(dir, 'api-tokens');
    fs.writeFileSync(tokensFile, `# clients\n${SECRET.apiToken}\n${SECRET.otherApiToken}\n`);
    const redisPwFile = path.join(dir, 'redis-password');
    fs.writeFileSync(redisPwFile, `${SECRET.redisPassword}\n`);
    const pgPwFile = path.join(dir, 'pg-password');
    fs.writeFileSync(pgPwFile, SECRET.pgPassword);

    // The database, created over TLS with the password.
    const admin = createDb({
      databaseUrl: `postgres://postgres:${SECRET.pgPassword}@127.0.0.1:${tlsPg.port}/postgres`,
      ssl: { ca: fs.readFileSync(certs.caFile, 'utf8') },
      poolSize: 1,
    });
    await sql`create database tradefleet`.execute(admin.db);
    await admin.close();

    const namespace = testNamespace('secrets');
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const common = {
      LOG_LEVEL: 'debug',
      TRADEFLEET_NAMESPACE: namespace,
      DATABASE_URL: `postgres://postgres@127.0.0.1:${tlsPg.port}/tradefleet`,
      DATABASE_PASSWORD_FILE: pgPwFile,
      DATABASE_SSL_MODE: 'verify-full',
      DATABASE_SSL_CA_FILE: certs.caFile,
    };
    const producerEnv = {
      ...common,
      REDIS_URL: `rediss://127.0.0.1:${tlsRedis.port}`,
      REDIS_PASSWORD_FILE: redisPwFile,
      REDIS_TLS_CA_FILE: certs.caFile,
      API_TOKENS_FILE: tokensFile,
      DASHBOARD_PASSWORD: SECRET.dashboardPassword,
      RATE_LIMIT_PER_SECOND: '20',
      RATE_LIMIT_BURST: '20',
      PORT: String(port),
      HOST: '127.0.0.1',
      SHUTDOWN_TIMEOUT_MS: '3000',
    };
    const outputs: Record<string, string> = {};

    const migrate = spawnCli(['migrate'], common);
    expect(await exitCode(migrate)).toBe(0);
    outputs.migrate = outputOf(migrate);

    const producer = spawnCli(['producer'], producerEnv);
    await waitFor(
      'the producer to become ready over TLS',
      async () => {
        if (producer.exitCode !== null) throw new Error(`producer exited: ${outputOf(producer)}`);
        return (await fetch(`${base}/readyz`).catch(() => undefined))?.status === 200;
      },
      30_000,
      100,
    );

    // Every kind of answer, kept whole (status, headers, body) for the grep.
    const responses: string[] = [];
    const call = async (route: string, init: RequestInit = {}) => {
      const res = await fetch(`${base}${route}`, { redirect: 'manual', ...init });
      const text = await res.text();
      responses.push(`${res.status} ${JSON.stringify([...res.headers])} ${text}`);
      return { status: res.status, text };
    };
    const auth = (token: string) => ({ authorization: `Bearer ${token}` });
    const json = { 'content-type': 'application/json' };
    const good = trade('secrets');
    expect(
      (await call('/v1/trades', { method: 'POST', headers: json, body: JSON.stringify(trade()) })).status,
    ).toBe(401);
    expect(
      (
        await call('/v1/trades', {
          method: 'POST',
          headers: { ...json, ...auth(SECRET.wrongToken) },
          body: '{}',
        })
      ).status,
    ).toBe(401);
    expect(
      (
        await call('/v1/trades', {
          method: 'POST',
          headers: { ...json, ...auth(SECRET.apiToken) },
          body: JSON.stringify(good),
        })
      ).status,
    ).toBe(202);
    expect(
      (
        await call('/v1/trades/batch', {
          method: 'POST',
          headers: { ...json, ...auth(SECRET.otherApiToken) },
          body: JSON.stringify({ trades: [trade(), { ...trade(), price: 'not a number' }] }),
        })
      ).status,
    ).toBe(200);
    expect(
      (
        await call('/v1/trades', {
          method: 'POST',
          headers: { ...json, ...auth(SECRET.apiToken) },
          body: '{"bad json',
        })
      ).status,
    ).toBe(400);
    expect(
      (await call(`/v1/trades/${good.tradeId as string}`, { headers: auth(SECRET.apiToken) })).status,
    ).toBe(200);
    expect((await call('/v1/positions/A/B/C', { headers: auth(SECRET.apiToken) })).status).toBe(404);
    expect((await call('/metrics', { headers: auth(SECRET.apiToken) })).status).toBe(200);
    expect((await call('/readyz')).status).toBe(200);
    expect(
      (await call('/dashboard', { headers: { ...auth(SECRET.apiToken), accept: 'text/html' } })).status,
    ).toBe(200);
    expect(
      (
        await call('/dashboard/login', {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', origin: base },
          body: new URLSearchParams({ user: 'admin', password: SECRET.wrongToken, next: '/dashboard' }),
        })
      ).status,
    ).toBe(401);
    let limited = 0;
    for (let i = 0; i < 40; i++) {
      const r = await call('/v1/trades', {
        method: 'POST',
        headers: { ...json, ...auth(SECRET.apiToken) },
        body: JSON.stringify(trade()),
      });
      if (r.status === 429) limited += 1;
    }
    expect(limited).toBeGreaterThan(0);

    // A worker drains the queue over the same TLS Redis and PostgreSQL. (Its passwords and
    // TLS also reach it through the URLs and Node's trust store, which works whether or not
    // src/worker/main.ts builds its clients with src/config/connections.ts.)
    const worker = spawnCli(['worker'], {
      ...common,
      DATABASE_URL: `postgres://postgres:${SECRET.pgPassword}@127.0.0.1:${tlsPg.port}/tradefleet`,
      REDIS_URL: `rediss://:${SECRET.redisPassword}@127.0.0.1:${tlsRedis.port}`,
      REDIS_PASSWORD_FILE: redisPwFile,
      REDIS_TLS_CA_FILE: certs.caFile,
      PGSSLMODE: 'verify-full',
      NODE_EXTRA_CA_CERTS: certs.caFile,
      METRICS_PORT: '0',
    });
    await waitFor(
      'the worker to apply the trade',
      async () => {
        if (worker.exitCode !== null) throw new Error(`worker exited: ${outputOf(worker)}`);
        const res = await fetch(`${base}/v1/trades/${good.tradeId as string}`, {
          headers: auth(SECRET.apiToken),
        });
        return ((await res.json()) as { state?: string }).state === 'applied';
      },
      30_000,
      200,
    );

    // A configuration error that involves secrets: reported, never echoed.
    const bad = spawnCli(['producer'], {
      ...producerEnv,
      API_TOKENS: `short,${SECRET.otherApiToken} with a space`,
      DATABASE_URL: `postgres://postgres:${SECRET.pgPassword}@127.0.0.1:${tlsPg.port}/tradefleet?sslmode=require`,
      REDIS_PASSWORD: SECRET.redisPassword,
    });
    expect(await exitCode(bad)).toBe(1);
    outputs.badConfig = outputOf(bad);
    expect(outputs.badConfig).toMatch(/API_TOKENS item 1 \(value hidden\)/);
    expect(outputs.badConfig).toMatch(/REDIS_PASSWORD and REDIS_PASSWORD_FILE are both set/);

    worker.kill('SIGTERM');
    producer.kill('SIGTERM');
    expect(await exitCode(worker)).toBe(0);
    expect(await exitCode(producer)).toBe(0);
    outputs.producer = outputOf(producer);
    outputs.worker = outputOf(worker);

    // The processes did log (at debug), so the grep below means something.
    expect(outputs.producer).toMatch(/"msg":"trade queued"/);
    expect(outputs.producer).toMatch(/"apiTokens":"\(2 hidden\)"/);
    expect(outputs.producer).toMatch(/"redisPassword":"\(hidden\)"/);
    expect(outputs.worker).toMatch(/worker starting/);
    expect(outputs.migrate).toMatch(/migration/);
    expect(responses.length).toBeGreaterThan(40);

    const manifests = ENVIRONMENTS.flatMap((env) => [...renderEnvironment(env).values()]).join('\n');
    const onDisk = ENVIRONMENTS.flatMap((env) =>
      fs
        .readdirSync(path.join(__dirname, '..', '..', 'charts', env))
        .map((f) => fs.readFileSync(path.join(__dirname, '..', '..', 'charts', env, f), 'utf8')),
    ).join('\n');
    const haystacks: Record<string, string> = {
      ...outputs,
      responses: responses.join('\n'),
      manifests,
      charts: onDisk,
    };
    const leaks: string[] = [];
    for (const [where, text] of Object.entries(haystacks)) {
      for (const [name, secret] of Object.entries(SECRET)) {
        if (text.includes(secret)) leaks.push(`${name} in ${where}`);
        // Nor a recognizable part of it (a truncated or split value).
        if (text.includes(secret.slice(0, 14))) leaks.push(`${name} (prefix) in ${where}`);
      }
    }
    expect(leaks).toEqual([]);
  });
});
