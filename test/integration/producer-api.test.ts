/**
 * The producer HTTP API through app.inject against a real Redis and a real,
 * freshly migrated PostgreSQL: accepted, duplicate and conflicting trades,
 * every class of bad input (rejected with a stable code, the field named, and
 * nothing enqueued), batches, backpressure, an unreachable Redis, the read
 * routes, probes, metrics, auth and logging.
 */
import { once } from 'node:events';
import { Writable } from 'node:stream';

import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import IORedis from 'ioredis';

import { loadProducerConfig } from '../../src/config';
import {
  createDb,
  insertDeadLetters,
  insertTrade,
  migrateToLatest,
  upsertPosition,
  type DbHandle,
} from '../../src/db';
import { canonicalTradeJson, partitionKey, payloadHash, validateTrade, type Trade } from '../../src/domain';
import { createLogger } from '../../src/observability/logger';
import { buildProducerApp, ERROR_CATALOGUE, producerRedisOptions } from '../../src/producer';
import { PartitionQueue, readSignals } from '../../src/queue';
import { createTestDatabase, redisUrl, testNamespace, type TestDatabase } from '../helpers/isolation';
import { waitFor } from '../helpers/processes';
import { freePort, startRedis } from '../helpers/servers';

// app.inject loads light-my-request, which requires `cookie` 2: an ES module that Jest's
// CommonJS runtime cannot load on Node 20 (the jest config transforms only kysely). It is
// used only for inject's `cookies` option, which these tests never pass.
jest.mock('cookie', () => ({
  stringifySetCookie: () => {
    throw new Error('inject cookies are not supported in these tests');
  },
}));

const BATCH_MAX = 8;
const BODY_LIMIT = 4096;

let database: TestDatabase;
let dbHandle: DbHandle;
/** The app's client, configured like the real process (fail fast). */
let redis: IORedis;
/** The test's own client, for reading signals. */
let probe: IORedis;

const cleanups: (() => Promise<unknown>)[] = [];

async function ready(client: IORedis): Promise<IORedis> {
  if (client.status !== 'ready') await once(client, 'ready');
  return client;
}

beforeAll(async () => {
  database = await createTestDatabase();
  dbHandle = createDb({ databaseUrl: database.url, poolSize: 4 });
  await migrateToLatest(dbHandle.db);
  redis = await ready(new IORedis(redisUrl(), producerRedisOptions()));
  probe = new IORedis(redisUrl(), { maxRetriesPerRequest: null });
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

afterAll(async () => {
  await redis.quit();
  await probe.quit();
  await dbHandle.close();
  await database.drop();
});

interface Harness {
  app: FastifyInstance;
  queue: PartitionQueue;
  logs: Record<string, unknown>[];
  backlog(): Promise<number>;
}

function harness(
  opts: {
    maxBacklog?: number;
    authTokens?: string[];
    client?: IORedis;
    namespace?: string;
    db?: DbHandle['db'];
  } = {},
): Harness {
  const client = opts.client ?? redis;
  const namespace = opts.namespace ?? testNamespace('producer-api');
  const queue = new PartitionQueue({ redis: client, namespace, maxBacklog: opts.maxBacklog ?? 0 });
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n'))
        if (line.trim()) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const logger = createLogger({ level: 'info', name: 'producer-test', destination: sink });
  const config = loadProducerConfig({
    BATCH_MAX_TRADES: String(BATCH_MAX),
    BODY_LIMIT_BYTES: String(BODY_LIMIT),
    TRADEFLEET_NAMESPACE: namespace,
  });
  const app = buildProducerApp({
    queue,
    redis: client,
    db: opts.db ?? dbHandle.db,
    config,
    logger,
    ...(opts.authTokens ? { authTokens: opts.authTokens } : {}),
  });
  cleanups.push(async () => {
    await app.close();
  });
  return { app, queue, logs, backlog: async () => (await readSignals(probe, queue.keys)).backlog };
}

let nextId = 0;
function trade(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  nextId += 1;
  return {
    tradeId: `T-${process.pid}-${nextId}`,
    type: 'NEW',
    accountId: 'ACC-1',
    bookId: 'EQ_DESK.1',
    securityId: 'US0378331005',
    side: 'BUY',
    quantity: '100',
    price: '101.25',
    currency: 'USD',
    tradeTime: '2026-11-22T10:15:30.123+01:00',
    ...overrides,
  };
}

function post(app: FastifyInstance, url: string, payload: unknown, headers: Record<string, string> = {}) {
  return app.inject({
    method: 'POST',
    url,
    headers: { 'content-type': 'application/json', ...headers },
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
  });
}

interface ErrorJson {
  error: { code: string; message: string; details?: { path: string; code: string; message: string }[] };
}

function errorOf(res: LightMyRequestResponse): ErrorJson['error'] {
  const body = res.json<ErrorJson>();
  expect(Object.keys(body)).toEqual(['error']);
  expect(typeof body.error.message).toBe('string');
  return body.error;
}

/** Asserts the catalogued status and code, a named field, and returns the error. */
function expectError(res: LightMyRequestResponse, code: keyof typeof ERROR_CATALOGUE, path?: string) {
  expect({ status: res.statusCode, code: res.json<ErrorJson>().error?.code }).toEqual({
    status: ERROR_CATALOGUE[code].status,
    code,
  });
  const error = errorOf(res);
  if (path !== undefined) expect(error.details?.map((d) => d.path)).toContain(path);
  return error;
}

// ---------------------------------------------------------------------------

describe('POST /v1/trades', () => {
  test('accepts a trade with 202 and its partition seq, and enqueues it', async () => {
    const h = harness();
    const a = trade();
    const b = trade();
    const resA = await post(h.app, '/v1/trades', a);
    expect(resA.statusCode).toBe(202);
    expect(resA.json()).toEqual({
      tradeId: a.tradeId,
      partitionKey: partitionKey('ACC-1', 'EQ_DESK.1', 'US0378331005'),
      seq: 1,
      status: 'queued',
    });
    expect(partitionKey('ACC-1', 'EQ_DESK.1', 'US0378331005')).toBe('ACC-1_EQ%5FDESK.1_US0378331005');
    const resB = await post(h.app, '/v1/trades', b);
    expect(resB.statusCode).toBe(202);
    expect(resB.json()).toMatchObject({ tradeId: b.tradeId, seq: 2, status: 'queued' });
    expect(await h.backlog()).toBe(2);
    expect(resA.headers['x-request-id']).toEqual(expect.any(String));
  });

  test('the same payload again is a duplicate: 200 with the first seq, nothing enqueued', async () => {
    const h = harness();
    const t = trade({ quantity: '1.50' });
    expect((await post(h.app, '/v1/trades', t)).statusCode).toBe(202);
    await post(h.app, '/v1/trades', trade());
    // Same trade in another spelling of the same decimal: canonical payloads are equal.
    const again = await post(h.app, '/v1/trades', { ...t, quantity: '1.5' });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual({
      tradeId: t.tradeId,
      partitionKey: 'ACC-1_EQ%5FDESK.1_US0378331005',
      seq: 1,
      status: 'queued',
      duplicate: true,
    });
    expect(await h.backlog()).toBe(2);
  });

  test('the same tradeId with another payload is a 409 conflict, nothing enqueued', async () => {
    const h = harness();
    const t = trade();
    await post(h.app, '/v1/trades', t);
    const res = await post(h.app, '/v1/trades', { ...t, quantity: '200' });
    const error = expectError(res, 'conflict', 'tradeId');
    expect(error.message).toMatch(/already accepted \(seq 1\) with a different payload/);
    expect(await h.backlog()).toBe(1);
  });
});

describe('bad input gets a 4xx with a stable code, the field named, and enqueues nothing', () => {
  const invalidTrades: [string, () => Record<string, unknown>, string, string][] = [
    ['a missing field', () => trade({ quantity: undefined }), 'quantity', 'required'],
    ['an extra field', () => trade({ venue: 'XNAS' }), 'venue', 'unknown_field'],
    ['a wrong type', () => trade({ quantity: 100 }), 'quantity', 'type'],
    ['a number where a decimal string is expected', () => trade({ price: 101.25 }), 'price', 'type'],
    ['a bad decimal', () => trade({ quantity: '1e5' }), 'quantity', 'decimal'],
    ['a decimal with too many digits', () => trade({ price: '1.1234567890123' }), 'price', 'decimal'],
    ['a non-positive quantity', () => trade({ quantity: '0' }), 'quantity', 'range'],
    ['an unknown side', () => trade({ side: 'HOLD' }), 'side', 'enum'],
    ['an unknown type', () => trade({ type: 'SWAP' }), 'type', 'enum'],
    ['an unknown currency', () => trade({ currency: 'usd' }), 'currency', 'enum'],
    [
      'a trade time without offset',
      () => trade({ tradeTime: '2026-11-22T10:15:30' }),
      'tradeTime',
      'pattern',
    ],
    ['an AMEND without refTradeId', () => trade({ type: 'AMEND' }), 'refTradeId', 'required'],
    ['a CANCEL without refTradeId', () => trade({ type: 'CANCEL' }), 'refTradeId', 'required'],
    ['a bad tradeId', () => trade({ tradeId: 'has|pipe' }), 'tradeId', 'pattern'],
    [
      'a __proto__ key',
      () =>
        JSON.parse(JSON.stringify(trade()).replace(/^\{/, '{"__proto__":{"x":1},')) as Record<
          string,
          unknown
        >,
      '__proto__',
      'unknown_field',
    ],
  ];

  test.each(invalidTrades)('%s', async (_name, make, path, fieldCode) => {
    const h = harness();
    const res = await post(h.app, '/v1/trades', make());
    const error = expectError(res, 'validation_failed', path);
    expect(error.details).toContainEqual(expect.objectContaining({ path, code: fieldCode }));
    expect(await h.backlog()).toBe(0);
  });

  test('every problem of a payload is listed at once', async () => {
    const h = harness();
    const res = await post(
      h.app,
      '/v1/trades',
      trade({ side: 'buy', quantity: '-1', currency: undefined, venue: 'X' }),
    );
    const error = expectError(res, 'validation_failed');
    expect(error.details?.map((d) => [d.path, d.code])).toEqual([
      ['side', 'enum'],
      ['quantity', 'range'],
      ['currency', 'required'],
      ['venue', 'unknown_field'],
    ]);
    for (const d of error.details ?? []) expect(d.message).toEqual(expect.stringContaining(d.path));
    expect(await h.backlog()).toBe(0);
  });

  test('a body that is not an object', async () => {
    const h = harness();
    expectError(await post(h.app, '/v1/trades', [trade()]), 'validation_failed', '');
    expectError(await post(h.app, '/v1/trades', 'null'), 'validation_failed', '');
    expect(await h.backlog()).toBe(0);
  });

  test('malformed JSON', async () => {
    const h = harness();
    const error = expectError(await post(h.app, '/v1/trades', '{"tradeId": "T1",'), 'malformed_json', '');
    expect(error.message).toMatch(/not valid JSON/);
    expectError(await post(h.app, '/v1/trades/batch', '{"trades": [}'), 'malformed_json', '');
    expect(await h.backlog()).toBe(0);
  });

  test('an empty body', async () => {
    const h = harness();
    expectError(await post(h.app, '/v1/trades', ''), 'malformed_json', '');
    expect(await h.backlog()).toBe(0);
  });

  test('a wrong, missing or non-UTF-8 content type', async () => {
    const h = harness();
    const body = JSON.stringify(trade());
    const send = (headers: Record<string, string>, payload?: string) =>
      h.app.inject({
        method: 'POST',
        url: '/v1/trades',
        headers,
        ...(payload === undefined ? {} : { payload }),
      });
    const plain = expectError(
      await send({ 'content-type': 'text/plain' }, body),
      'unsupported_media_type',
      'content-type',
    );
    expect(plain.message).toContain('got Content-Type "text/plain"');
    expectError(
      await send({ 'content-type': 'application/x-www-form-urlencoded' }, 'a=1'),
      'unsupported_media_type',
      'content-type',
    );
    expectError(
      await send({ 'content-type': 'application/json; charset=latin1' }, body),
      'unsupported_media_type',
      'content-type',
    );
    expectError(await send({}), 'unsupported_media_type', 'content-type');
    expect((await send({ 'content-type': 'application/json; charset=UTF-8' }, body)).statusCode).toBe(202);
    expect(await h.backlog()).toBe(1);
  });

  test('an oversized body', async () => {
    const h = harness();
    const big = JSON.stringify({ trades: Array.from({ length: 40 }, () => trade()) });
    expect(Buffer.byteLength(big)).toBeGreaterThan(BODY_LIMIT);
    const error = expectError(await post(h.app, '/v1/trades/batch', big), 'body_too_large', '');
    expect(error.message).toContain(`BODY_LIMIT_BYTES=${BODY_LIMIT}`);
    expectError(
      await post(h.app, '/v1/trades', { ...trade(), padding: 'x'.repeat(BODY_LIMIT) }),
      'body_too_large',
    );
    expect(await h.backlog()).toBe(0);
  });

  test('an oversized batch', async () => {
    const h = harness();
    const res = await post(h.app, '/v1/trades/batch', {
      trades: Array.from({ length: BATCH_MAX + 1 }, () => trade()),
    });
    const error = expectError(res, 'batch_too_large', 'trades');
    expect(error.message).toContain(`at most ${BATCH_MAX} (BATCH_MAX_TRADES)`);
    expect(error.message).toMatch(/split it into batches/);
    expect(await h.backlog()).toBe(0);
  });

  test('a batch envelope without trades, with a non-array, empty, or with unknown fields', async () => {
    const h = harness();
    let error = expectError(await post(h.app, '/v1/trades/batch', {}), 'validation_failed', 'trades');
    expect(error.details?.[0]?.code).toBe('required');
    error = expectError(
      await post(h.app, '/v1/trades/batch', { trades: trade() }),
      'validation_failed',
      'trades',
    );
    expect(error.details?.[0]?.code).toBe('type');
    expectError(await post(h.app, '/v1/trades/batch', { trades: [] }), 'validation_failed', 'trades');
    error = expectError(
      await post(h.app, '/v1/trades/batch', { trades: [trade()], dryRun: true }),
      'validation_failed',
      'dryRun',
    );
    expect(error.details).toContainEqual(expect.objectContaining({ path: 'dryRun', code: 'unknown_field' }));
    expectError(await post(h.app, '/v1/trades/batch', [trade()]), 'validation_failed', '');
    expect(await h.backlog()).toBe(0);
  });

  test('bad path parameters', async () => {
    const h = harness();
    expectError(
      await h.app.inject({ method: 'GET', url: '/v1/trades/has%7Cpipe' }),
      'invalid_parameter',
      'tradeId',
    );
    expectError(
      await h.app.inject({ method: 'GET', url: `/v1/trades/${'x'.repeat(65)}` }),
      'invalid_parameter',
      'tradeId',
    );
    const res = await h.app.inject({ method: 'GET', url: '/v1/positions/ACC%201/B/%2E%2E%24' });
    const error = expectError(res, 'invalid_parameter', 'accountId');
    expect(error.details?.map((d) => d.path)).toEqual(['accountId', 'securityId']);
  });

  test('unknown routes and methods', async () => {
    const h = harness();
    expectError(await h.app.inject({ method: 'GET', url: '/v2/trades' }), 'route_not_found');
    expectError(await h.app.inject({ method: 'DELETE', url: '/v1/trades/T1' }), 'route_not_found');
  });
});

describe('POST /v1/trades/batch', () => {
  test('one result per item in request order; invalid items are rejected on their own', async () => {
    const h = harness();
    const first = trade();
    await post(h.app, '/v1/trades', first);
    const a = trade();
    const other = trade({ accountId: 'ACC-2' });
    const items = [a, trade({ side: 'HOLD' }), first, { ...first, price: '1' }, other, { tradeId: 42 }];
    const res = await post(h.app, '/v1/trades/batch', { trades: items });
    expect(res.statusCode).toBe(200);
    const body = res.json<{ results: Record<string, unknown>[]; summary: Record<string, number> }>();
    const pk1 = 'ACC-1_EQ%5FDESK.1_US0378331005';
    expect(body.results).toEqual([
      { index: 0, tradeId: a.tradeId, partitionKey: pk1, status: 'queued', seq: 2 },
      {
        index: 1,
        tradeId: items[1]!.tradeId,
        status: 'invalid',
        error: expect.objectContaining({
          code: 'validation_failed',
          details: [expect.objectContaining({ path: 'side', code: 'enum' })],
        }),
      },
      { index: 2, tradeId: first.tradeId, partitionKey: pk1, status: 'duplicate', seq: 1 },
      {
        index: 3,
        tradeId: first.tradeId,
        partitionKey: pk1,
        status: 'conflict',
        error: expect.objectContaining({
          code: 'conflict',
          details: [expect.objectContaining({ path: 'tradeId' })],
        }),
      },
      {
        index: 4,
        tradeId: other.tradeId,
        partitionKey: 'ACC-2_EQ%5FDESK.1_US0378331005',
        status: 'queued',
        seq: 1,
      },
      { index: 5, status: 'invalid', error: expect.objectContaining({ code: 'validation_failed' }) },
    ]);
    expect(body.summary).toEqual({ total: 6, queued: 2, duplicate: 1, conflict: 1, invalid: 2 });
    expect(await h.backlog()).toBe(3);
  });

  test('202 when every item was queued; repeats inside one batch are duplicates of the first', async () => {
    const h = harness();
    const a = trade();
    const b = trade();
    const all = await post(h.app, '/v1/trades/batch', { trades: [a, b] });
    expect(all.statusCode).toBe(202);
    expect(all.json<{ results: { seq: number }[] }>().results.map((r) => r.seq)).toEqual([1, 2]);
    const c = trade();
    const withRepeat = await post(h.app, '/v1/trades/batch', { trades: [c, c] });
    expect(withRepeat.statusCode).toBe(200);
    expect(withRepeat.json<{ results: unknown[] }>().results).toEqual([
      expect.objectContaining({ status: 'queued', seq: 3 }),
      expect.objectContaining({ status: 'duplicate', seq: 3 }),
    ]);
    expect(await h.backlog()).toBe(3);
  });
});

describe('backpressure', () => {
  test('past MAX_BACKLOG: 429 backlog_full with Retry-After, and nothing of the request is enqueued', async () => {
    const h = harness({ maxBacklog: 3 });
    expect((await post(h.app, '/v1/trades/batch', { trades: [trade(), trade()] })).statusCode).toBe(202);
    const refused = await post(h.app, '/v1/trades/batch', { trades: [trade(), trade()] });
    expectError(refused, 'backlog_full');
    expect(refused.headers['retry-after']).toBe(String(ERROR_CATALOGUE.backlog_full.retryAfterSeconds));
    expect(await h.backlog()).toBe(2);
    expect((await post(h.app, '/v1/trades', trade())).statusCode).toBe(202);
    const single = await post(h.app, '/v1/trades', trade());
    expectError(single, 'backlog_full');
    expect(single.headers['retry-after']).toBeDefined();
    expect(await h.backlog()).toBe(3);
    // An invalid trade is still answered as invalid, not as backpressure.
    expectError(await post(h.app, '/v1/trades', trade({ side: 'X' })), 'validation_failed', 'side');
  });

  test('Redis unreachable (hung or down): 503 redis_unavailable with Retry-After, fast, and the app recovers', async () => {
    const server = await startRedis();
    cleanups.push(() => server.stop());
    const client = await ready(new IORedis(server.url, producerRedisOptions()));
    client.on('error', () => undefined);
    cleanups.push(() => client.quit());
    const h = harness({ client });
    expect((await post(h.app, '/v1/trades', trade())).statusCode).toBe(202);

    // Hung: the server accepts nothing (SIGSTOP); commands time out.
    server.kill('SIGSTOP');
    try {
      let started = Date.now();
      const hung = await post(h.app, '/v1/trades', trade());
      expect(Date.now() - started).toBeLessThan(5000);
      expectError(hung, 'redis_unavailable');
      expect(hung.headers['retry-after']).toBe(String(ERROR_CATALOGUE.redis_unavailable.retryAfterSeconds));
      started = Date.now();
      const notReady = await h.app.inject({ method: 'GET', url: '/readyz' });
      expect(Date.now() - started).toBeLessThan(5000);
      expectError(notReady, 'not_ready', 'redis');
      expect(errorOf(notReady).details?.map((d) => d.path)).toEqual(['redis']);
      expect((await h.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    } finally {
      server.kill('SIGCONT');
    }

    // Down: connection refused; with no offline queue every call fails at once.
    server.kill('SIGKILL');
    await waitFor('the client to see Redis down', () => client.status !== 'ready');
    const started = Date.now();
    const down = await post(h.app, '/v1/trades/batch', { trades: [trade(), trade()] });
    expect(Date.now() - started).toBeLessThan(3000);
    expectError(down, 'redis_unavailable');
    expect(down.headers['retry-after']).toBeDefined();
    expectError(await h.app.inject({ method: 'GET', url: '/v1/trades/T-unknown' }), 'redis_unavailable');
    expectError(await h.app.inject({ method: 'GET', url: '/readyz' }), 'not_ready', 'redis');
    expect((await h.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);

    // Back: the client reconnects on its own and the same app accepts trades again.
    await server.restart();
    await waitFor('the client to reconnect', () => client.status === 'ready', 10_000);
    expect((await post(h.app, '/v1/trades', trade())).statusCode).toBe(202);
    expect((await h.app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
  });
});

describe('PostgreSQL unreachable', () => {
  test('read routes answer 503 database_unavailable with Retry-After; enqueueing does not need PostgreSQL', async () => {
    const nowhere = createDb({
      databaseUrl: `postgres://postgres@127.0.0.1:${await freePort()}/none`,
      poolSize: 1,
    });
    cleanups.push(() => nowhere.close());
    const h = harness({ db: nowhere.db });
    const t = trade();
    expect((await post(h.app, '/v1/trades', t)).statusCode).toBe(202);
    // Queued in Redis: still answered, PostgreSQL being down does not hide it.
    expect(
      (await h.app.inject({ method: 'GET', url: `/v1/trades/${String(t.tradeId)}` })).json(),
    ).toMatchObject({ state: 'queued' });
    const unknown = await h.app.inject({ method: 'GET', url: '/v1/trades/T-not-in-redis' });
    expectError(unknown, 'database_unavailable');
    expect(unknown.headers['retry-after']).toBe(
      String(ERROR_CATALOGUE.database_unavailable.retryAfterSeconds),
    );
    expectError(await h.app.inject({ method: 'GET', url: '/v1/positions/A/B/C' }), 'database_unavailable');
    const notReady = await h.app.inject({ method: 'GET', url: '/readyz' });
    expectError(notReady, 'not_ready', 'postgres');
    expect(errorOf(notReady).details?.map((d) => d.path)).toEqual(['postgres']);
  });
});

describe('GET /v1/trades/:tradeId', () => {
  function validated(input: Record<string, unknown>): Trade {
    const v = validateTrade(input);
    if (!v.ok) throw new Error(JSON.stringify(v.errors));
    return v.trade;
  }

  test('queued, then applied once the worker committed it (PostgreSQL wins over the Redis backlog)', async () => {
    const h = harness();
    const input = trade({ quantity: '12.50' });
    const accepted = (await post(h.app, '/v1/trades', input)).json<{ seq: number; partitionKey: string }>();
    const queued = await h.app.inject({ method: 'GET', url: `/v1/trades/${String(input.tradeId)}` });
    expect(queued.statusCode).toBe(200);
    expect(queued.json()).toEqual({
      tradeId: input.tradeId,
      partitionKey: accepted.partitionKey,
      seq: accepted.seq,
      state: 'queued',
    });

    const t = validated(input);
    const appliedAt = new Date('2026-11-22T09:16:00.000Z');
    await insertTrade(dbHandle.db, {
      tradeId: t.tradeId,
      partitionKey: accepted.partitionKey,
      seq: accepted.seq,
      type: 'NEW',
      refTradeId: null,
      accountId: t.accountId,
      bookId: t.bookId,
      securityId: t.securityId,
      side: 'BUY',
      quantity: '12.5',
      price: '101.25',
      currency: 'USD',
      tradeTime: t.tradeTime,
      payload: JSON.parse(canonicalTradeJson(t)) as Record<string, string>,
      payloadHash: payloadHash(t),
      enqueuedAt: '2026-11-22T09:15:31.000Z',
      appliedAt,
      effSide: 'BUY',
      effQuantity: '12.5',
      effPrice: '101.25',
      effCurrency: 'USD',
      status: 'live',
    });
    const applied = await h.app.inject({ method: 'GET', url: `/v1/trades/${t.tradeId}` });
    expect(applied.statusCode).toBe(200);
    expect(applied.json()).toEqual({
      tradeId: t.tradeId,
      partitionKey: accepted.partitionKey,
      seq: accepted.seq,
      state: 'applied',
      type: 'NEW',
      tradeStatus: 'live',
      refTradeId: null,
      enqueuedAt: '2026-11-22T09:15:31.000Z',
      appliedAt: appliedAt.toISOString(),
      effective: { side: 'BUY', quantity: '12.5', price: '101.25', currency: 'USD' },
      trade: JSON.parse(canonicalTradeJson(t)) as unknown,
    });
  });

  test('dead_lettered with its reason', async () => {
    const h = harness();
    const t = validated(trade({ type: 'AMEND', refTradeId: 'T-never-booked' }));
    const pk = partitionKey(t.accountId, t.bookId, t.securityId);
    await insertDeadLetters(dbHandle.db, [
      {
        tradeId: t.tradeId,
        partitionKey: pk,
        seq: 7,
        payload: JSON.parse(canonicalTradeJson(t)) as Record<string, string>,
        payloadHash: payloadHash(t),
        reasonCode: 'unknown_ref',
        reason: 'AMEND of T-never-booked, which this partition never booked',
      },
    ]);
    const res = await h.app.inject({ method: 'GET', url: `/v1/trades/${t.tradeId}` });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      tradeId: t.tradeId,
      partitionKey: pk,
      seq: 7,
      state: 'dead_lettered',
      reasonCode: 'unknown_ref',
      reason: 'AMEND of T-never-booked, which this partition never booked',
      deadLetteredAt: expect.any(String),
      replayedAt: null,
      trade: JSON.parse(canonicalTradeJson(t)) as unknown,
    });
  });

  test('unknown: 404 trade_not_found', async () => {
    const h = harness();
    expectError(
      await h.app.inject({ method: 'GET', url: '/v1/trades/T-nobody-sent-this' }),
      'trade_not_found',
      'tradeId',
    );
  });
});

describe('GET /v1/positions/:accountId/:bookId/:securityId', () => {
  test('the position with canonical decimal strings; percent-encoded ids; 404 when none', async () => {
    const h = harness();
    const pk = partitionKey('ACC/9', 'BOOK_1', 'XS#1');
    await upsertPosition(dbHandle.db, {
      partitionKey: pk,
      accountId: 'ACC/9',
      bookId: 'BOOK_1',
      securityId: 'XS#1',
      currency: 'EUR',
      netQuantity: '-2.500000000000',
      boughtQuantity: '10',
      soldQuantity: '12.5',
      boughtNotional: '1000.250000000000000000000000',
      soldNotional: '1300',
      tradeCount: 3,
      lastSeq: 3,
      digest: 'abc123',
      leaseEpoch: 1,
    });
    const res = await h.app.inject({ method: 'GET', url: '/v1/positions/ACC%2F9/BOOK_1/XS%231' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      partitionKey: pk,
      accountId: 'ACC/9',
      bookId: 'BOOK_1',
      securityId: 'XS#1',
      currency: 'EUR',
      netQuantity: '-2.5',
      boughtQuantity: '10',
      soldQuantity: '12.5',
      boughtNotional: '1000.25',
      soldNotional: '1300',
      tradeCount: 3,
      lastSeq: 3,
      digest: 'abc123',
      updatedAt: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/),
    });
    expectError(
      await h.app.inject({ method: 'GET', url: '/v1/positions/ACC-1/NOBOOK/SEC' }),
      'position_not_found',
    );
  });
});

describe('probes and metrics', () => {
  test('/healthz and /readyz answer 200 when Redis and PostgreSQL are up', async () => {
    const h = harness();
    const health = await h.app.inject({ method: 'GET', url: '/healthz' });
    expect(health.statusCode).toBe(200);
    const readyRes = await h.app.inject({ method: 'GET', url: '/readyz' });
    expect(readyRes.statusCode).toBe(200);
    expect(readyRes.json()).toEqual({ status: 'ready', checks: { redis: 'ok', postgres: 'ok' } });
  });

  test('/metrics counts trades by outcome and requests by route pattern, never by trade id', async () => {
    const h = harness();
    const t = trade();
    await post(h.app, '/v1/trades', t);
    await post(h.app, '/v1/trades', t);
    await post(h.app, '/v1/trades', { ...t, price: '1' });
    await post(h.app, '/v1/trades', trade({ side: 'X' }));
    await h.app.inject({ method: 'GET', url: `/v1/trades/${String(t.tradeId)}` });
    await h.app.inject({ method: 'GET', url: '/no/such/route' });
    const res = await h.app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    const text = res.body;
    for (const outcome of ['queued', 'duplicate', 'conflict', 'invalid']) {
      expect(text).toContain(`tradefleet_producer_trades_total{outcome="${outcome}"} 1`);
    }
    expect(text).toContain('tradefleet_producer_trades_total{outcome="backlog_full"} 0');
    expect(text).toMatch(
      /tradefleet_producer_http_request_duration_seconds_count\{method="POST",route="\/v1\/trades",status_class="2xx"\} 2/,
    );
    expect(text).toMatch(/route="\/v1\/trades\/:tradeId"/);
    expect(text).toMatch(/route="unmatched",status_class="4xx"/);
    expect(text).not.toContain(String(t.tradeId));
  });
});

describe('bearer-token auth', () => {
  const TOKEN = 'tf-test-token-0123456789abcdef';

  test('when tokens are configured, every route but the probes needs one; 401 carries WWW-Authenticate', async () => {
    const h = harness({ authTokens: ['another-token-value', TOKEN] });
    const none = await post(h.app, '/v1/trades', trade());
    expectError(none, 'unauthorized');
    expect(none.headers['www-authenticate']).toBe('Bearer realm="tradefleet"');
    const wrong = await post(h.app, '/v1/trades', trade(), { authorization: `Bearer ${TOKEN}x` });
    expectError(wrong, 'unauthorized');
    expect(wrong.headers['www-authenticate']).toBe('Bearer realm="tradefleet", error="invalid_token"');
    const basic = await post(h.app, '/v1/trades', trade(), { authorization: 'Basic dXNlcjpwYXNz' });
    expect(basic.headers['www-authenticate']).toMatch(/error="invalid_request"/);
    expect(await h.backlog()).toBe(0);

    const ok = await post(h.app, '/v1/trades', trade(), { authorization: `Bearer ${TOKEN}` });
    expect(ok.statusCode).toBe(202);
    expect((await post(h.app, '/v1/trades', trade(), { authorization: `bearer ${TOKEN}` })).statusCode).toBe(
      202,
    );
    expectError(await h.app.inject({ method: 'GET', url: '/metrics' }), 'unauthorized');
    expect((await h.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    expect((await h.app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    // Unauthenticated bodies are never read: a malformed one still gets 401.
    expectError(await post(h.app, '/v1/trades', '{oops'), 'unauthorized');

    const logged = JSON.stringify(h.logs);
    expect(logged).not.toContain(TOKEN);
    expect(logged).not.toContain('another-token-value');
  });
});

describe('logging', () => {
  test('every line about a trade carries tradeId, partitionKey and seq; bodies are never logged', async () => {
    const h = harness();
    const t = trade({ price: '98765.4321' });
    await post(h.app, '/v1/trades', t);
    await post(h.app, '/v1/trades/batch', { trades: [trade({ price: '98765.4321' }), t] });
    await post(h.app, '/v1/trades', { ...t, price: '98765.4322', quantity: '424242.17' });
    const aboutTrades = h.logs.filter(
      (l) => typeof l.msg === 'string' && /trade/.test(l.msg) && l.outcome !== 'invalid',
    );
    // At info: the single POST's 'trade queued', the batch item's duplicate, the conflict
    // (a batch's queued items are logged at debug, the batch as one summary line).
    expect(aboutTrades.length).toBeGreaterThanOrEqual(3);
    expect(h.logs.find((l) => l.msg === 'batch enqueued')).toMatchObject({
      total: 2,
      queued: 1,
      duplicate: 1,
      conflict: 0,
      invalid: 0,
    });
    for (const line of aboutTrades) {
      expect(line).toEqual(
        expect.objectContaining({
          tradeId: expect.any(String),
          partitionKey: expect.any(String),
          seq: expect.any(Number),
        }),
      );
    }
    const text = JSON.stringify(h.logs);
    expect(text).not.toContain('98765.4321');
    expect(text).not.toContain('424242.17');
    expect(h.logs.every((l) => typeof l.level === 'string')).toBe(true);
  });
});
