/**
 * Hostile input against the producer API (buildProducerApp + app.inject, and a
 * listening server for what only a raw socket can send), with a real Redis and
 * a migrated PostgreSQL:
 *
 * - property-based (fast-check, fixed seed; FUZZ_SEED=n to try another, the
 *   failing seed and path are printed): arbitrary JSON, raw text, and
 *   near-valid trades (one field of a valid trade mutated: wrong types, huge
 *   strings, unicode, control characters, numbers for strings, NaN-like
 *   strings, bad decimals, extra fields, prototype keys, reused tradeIds),
 *   single and batch. Never a 5xx, every 4xx in the error shape with a
 *   catalogued code, never a half-enqueued batch (the backlog grows by exactly
 *   the number of `queued` results), and what is enqueued is the canonical trade;
 * - huge bodies and deep nesting refused early (413/400) and fast;
 * - header injection (what reaches Node's parser and what reaches us) and path
 *   injection (encoded slashes and dots, NUL, CR/LF, very long ids), refused
 *   with 400/404 in the error shape.
 */
import { once } from 'node:events';
import net from 'node:net';
import { Writable } from 'node:stream';

import fc from 'fast-check';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import IORedis from 'ioredis';

import { loadProducerConfig } from '../../src/config';
import { createDb, migrateToLatest, type DbHandle } from '../../src/db';
import { TRADE_FIELDS, validateTrade } from '../../src/domain';
import { createLogger } from '../../src/observability/logger';
import { buildProducerApp, ERROR_CATALOGUE, producerRedisOptions } from '../../src/producer';
import { decodeEntry, PartitionQueue, readSignals } from '../../src/queue';
import { createTestDatabase, redisUrl, testNamespace, type TestDatabase } from '../helpers/isolation';

// As in producer-api.test.ts: app.inject loads light-my-request, which requires the ESM-only
// `cookie` 2 for its `cookies` option only; these tests never pass cookies.
jest.mock('cookie', () => ({
  stringifySetCookie: () => {
    throw new Error('inject cookies are not supported in these tests');
  },
}));

jest.setTimeout(120_000);

const SEED = Number(process.env.FUZZ_SEED ?? 20261122);
const BATCH_MAX = 12;
/** The fuzzed app: small, so that huge strings cross it now and then. */
const BODY_LIMIT = 16 * 1024;
/** The app for huge bodies and deep nesting: the default limit. */
const BIG_BODY_LIMIT = 1024 * 1024;

let database: TestDatabase;
let dbHandle: DbHandle;
let redis: IORedis;
let probe: IORedis;

interface Harness {
  app: FastifyInstance;
  queue: PartitionQueue;
  /** Log lines at error level or worse (an unhandled error is one). */
  errors: Record<string, unknown>[];
  backlog(): Promise<number>;
}
const harnesses: Harness[] = [];

function harness(bodyLimit: number): Harness {
  const namespace = testNamespace('fuzz');
  const queue = new PartitionQueue({ redis, namespace, maxBacklog: 0 });
  const errors: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) {
        if (!line.trim()) continue;
        const o = JSON.parse(line) as Record<string, unknown>;
        if (o.level === 'error' || o.level === 'fatal') errors.push(o);
      }
      done();
    },
  });
  const app = buildProducerApp({
    queue,
    redis,
    db: dbHandle.db,
    config: loadProducerConfig({
      BATCH_MAX_TRADES: String(BATCH_MAX),
      BODY_LIMIT_BYTES: String(bodyLimit),
      TRADEFLEET_NAMESPACE: namespace,
    }),
    logger: createLogger({ level: 'warn', name: 'producer-fuzz', destination: sink }),
  });
  const h = { app, queue, errors, backlog: async () => (await readSignals(probe, queue.keys)).backlog };
  harnesses.push(h);
  return h;
}

let fuzz: Harness;
let big: Harness;

beforeAll(async () => {
  database = await createTestDatabase();
  dbHandle = createDb({ databaseUrl: database.url, poolSize: 4 });
  await migrateToLatest(dbHandle.db);
  redis = new IORedis(redisUrl(), producerRedisOptions());
  if (redis.status !== 'ready') await once(redis, 'ready');
  probe = new IORedis(redisUrl(), { maxRetriesPerRequest: null });
  fuzz = harness(BODY_LIMIT);
  big = harness(BIG_BODY_LIMIT);
});

afterAll(async () => {
  for (const h of harnesses) {
    await h.app.close();
  }
  await redis?.quit();
  await probe?.quit();
  await dbHandle?.close();
  await database?.drop();
});

afterEach(() => {
  // No handler ever crashed (an unhandled error is logged at error level and answered 500).
  for (const h of harnesses) expect(h.errors.map((e) => e.msg)).toEqual([]);
  // And nothing reached Object.prototype through a "__proto__" key.
  expect(Object.keys(Object.prototype)).toEqual([]);
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
});

// ---------------------------------------------------------------------------
// Checks on one response

interface ErrorJson {
  error: { code: string; message: string; details?: { path: string; code: string; message: string }[] };
}

/** A 4xx: exactly `{error: {code, message, details?}}` with a catalogued code of this status. */
function checkErrorShape(
  res: LightMyRequestResponse | { statusCode: number; body: string; headers: Record<string, unknown> },
): ErrorJson['error'] {
  const where = `${res.statusCode} ${res.body.slice(0, 300)}`;
  let body: ErrorJson;
  try {
    body = JSON.parse(res.body) as ErrorJson;
  } catch {
    throw new Error(`error response is not JSON: ${where}`);
  }
  if (String(res.headers['content-type'] ?? '').split(';')[0] !== 'application/json')
    throw new Error(`error response content-type ${String(res.headers['content-type'])}: ${where}`);
  if (body === null || typeof body !== 'object' || Object.keys(body).join() !== 'error')
    throw new Error(`not the error shape: ${where}`);
  const e = body.error;
  const spec = (ERROR_CATALOGUE as Record<string, { status: number } | undefined>)[e.code];
  if (!spec) throw new Error(`uncatalogued error code ${e.code}: ${where}`);
  if (spec.status !== res.statusCode)
    throw new Error(`code ${e.code} is catalogued as ${spec.status}: ${where}`);
  if (typeof e.message !== 'string' || e.message.length === 0)
    throw new Error(`error without a message: ${where}`);
  const keys = Object.keys(e).filter((k) => k !== 'details');
  if (keys.join() !== 'code,message') throw new Error(`extra error fields ${keys.join()}: ${where}`);
  if (e.details !== undefined) {
    if (!Array.isArray(e.details)) throw new Error(`details is not an array: ${where}`);
    for (const d of e.details) {
      if (typeof d.path !== 'string' || typeof d.code !== 'string' || typeof d.message !== 'string')
        throw new Error(`malformed detail ${JSON.stringify(d)}: ${where}`);
    }
  }
  return e;
}

/** The entry at the tail of a partition list holds the canonical trade and the seq answered. */
async function checkEnqueued(h: Harness, partitionKey: string, tradeId: string, seq: number): Promise<void> {
  const entry = await probe.lindex(h.queue.keys.list(partitionKey), -1);
  if (entry === null) throw new Error(`queued ${tradeId} but partition ${partitionKey} is empty`);
  const item = decodeEntry(entry);
  if (item.tradeId !== tradeId || item.seq !== seq)
    throw new Error(`tail of ${partitionKey} is ${item.tradeId}@${item.seq}, answered ${tradeId}@${seq}`);
  const stored = JSON.parse(item.body) as Record<string, unknown>;
  const extra = Object.keys(stored).filter((k) => !(TRADE_FIELDS as readonly string[]).includes(k));
  if (extra.length > 0)
    throw new Error(`enqueued body of ${tradeId} has extra keys ${JSON.stringify(extra)}`);
  if (!validateTrade(stored).ok)
    throw new Error(`enqueued body of ${tradeId} is not a valid trade: ${item.body}`);
}

function post(h: Harness, url: string, payload: string, headers: Record<string, string> = {}) {
  return h.app.inject({
    method: 'POST',
    url,
    headers: { 'content-type': 'application/json', ...headers },
    payload,
  });
}

type Expect = 'queued' | 'any';

/** What the fuzz produced (statuses, batch item outcomes, error and detail codes), so a test can show it reached every branch. */
const seen = new Map<string, number>();
const saw = (what: string) => seen.set(what, (seen.get(what) ?? 0) + 1);
function sawError(e: ErrorJson['error']): void {
  saw(`code:${e.code}`);
  for (const d of e.details ?? []) saw(`detail:${d.code}`);
}
function expectSeen(...what: string[]): void {
  expect(what.filter((w) => !seen.has(w))).toEqual([]);
}

/** POST /v1/trades: checks the answer and that the backlog grew by exactly the queued count. */
async function postSingle(
  h: Harness,
  body: string,
  expectation: Expect,
  headers: Record<string, string> = {},
): Promise<{ status: number; tradeId?: string }> {
  const before = await h.backlog();
  const res = await post(h, '/v1/trades', body, headers);
  const after = await h.backlog();
  const where = `POST /v1/trades ${body.slice(0, 300)} -> ${res.statusCode} ${res.body.slice(0, 300)}`;
  if (res.statusCode >= 500) throw new Error(`5xx: ${where}`);
  saw(`single:${res.statusCode}`);
  let queued = 0;
  let tradeId: string | undefined;
  if (res.statusCode === 202 || res.statusCode === 200) {
    const b = res.json<{
      tradeId: string;
      partitionKey: string;
      seq: number;
      status: string;
      duplicate?: boolean;
    }>();
    if (
      typeof b.tradeId !== 'string' ||
      typeof b.partitionKey !== 'string' ||
      !Number.isInteger(b.seq) ||
      b.seq < 1
    )
      throw new Error(`bad success body: ${where}`);
    if (res.statusCode === 202) {
      if (b.status !== 'queued' || b.duplicate !== undefined) throw new Error(`bad 202 body: ${where}`);
      queued = 1;
      tradeId = b.tradeId;
      await checkEnqueued(h, b.partitionKey, b.tradeId, b.seq);
    } else if (b.duplicate !== true) throw new Error(`200 without duplicate: ${where}`);
  } else if (res.statusCode >= 400) {
    sawError(checkErrorShape(res));
  } else {
    throw new Error(`unexpected status: ${where}`);
  }
  if (after - before !== queued)
    throw new Error(`backlog grew by ${after - before}, ${queued} queued: ${where}`);
  if (expectation === 'queued' && res.statusCode !== 202)
    throw new Error(`a valid trade was not queued: ${where}`);
  return { status: res.statusCode, tradeId };
}

interface BatchItemJson {
  index: number;
  tradeId?: string;
  status: string;
  seq?: number;
  partitionKey?: string;
  error?: ErrorJson['error'];
}

/** POST /v1/trades/batch: checks every result and that the backlog grew by exactly the `queued` results. */
async function postBatch(
  h: Harness,
  body: string,
  items: number | undefined,
  mustQueue: ReadonlySet<number>,
): Promise<string[]> {
  const before = await h.backlog();
  const res = await post(h, '/v1/trades/batch', body);
  const after = await h.backlog();
  const where = `POST /v1/trades/batch ${body.slice(0, 300)} -> ${res.statusCode} ${res.body.slice(0, 400)}`;
  if (res.statusCode >= 500) throw new Error(`5xx: ${where}`);
  saw(`batch:${res.statusCode}`);
  const queuedIds: string[] = [];
  if (res.statusCode === 200 || res.statusCode === 202) {
    const b = res.json<{ results: BatchItemJson[]; summary: Record<string, number> }>();
    if (!Array.isArray(b.results) || (items !== undefined && b.results.length !== items))
      throw new Error(`results do not match the items: ${where}`);
    const counts: Record<string, number> = { queued: 0, duplicate: 0, conflict: 0, invalid: 0 };
    for (const [i, r] of b.results.entries()) {
      if (r.index !== i) throw new Error(`result ${i} has index ${r.index}: ${where}`);
      if (!(r.status in counts)) throw new Error(`result ${i} has status ${r.status}: ${where}`);
      counts[r.status]! += 1;
      saw(`item:${r.status}`);
      if (r.error) sawError(r.error);
      if (r.status === 'queued' || r.status === 'duplicate') {
        if (
          !Number.isInteger(r.seq) ||
          r.seq! < 1 ||
          typeof r.partitionKey !== 'string' ||
          typeof r.tradeId !== 'string' ||
          r.error !== undefined
        )
          throw new Error(`result ${i} malformed: ${where}`);
        if (r.status === 'queued') queuedIds.push(r.tradeId);
      } else {
        const code = checkErrorShape({
          statusCode: r.status === 'conflict' ? 409 : 400,
          body: JSON.stringify({ error: r.error }),
          headers: { 'content-type': 'application/json' },
        }).code;
        if (code !== (r.status === 'conflict' ? 'conflict' : 'validation_failed'))
          throw new Error(`result ${i} has error code ${code}: ${where}`);
      }
      if (mustQueue.has(i) && r.status !== 'queued')
        throw new Error(`valid item ${i} was not queued: ${where}`);
    }
    const summary = { total: b.results.length, ...counts };
    if (JSON.stringify(b.summary) !== JSON.stringify(summary))
      throw new Error(`summary ${JSON.stringify(b.summary)} vs results ${JSON.stringify(summary)}: ${where}`);
    if ((res.statusCode === 202) !== (counts.queued === b.results.length))
      throw new Error(`202 iff all queued: ${where}`);
    if (after - before !== counts.queued)
      throw new Error(`half-enqueued: backlog grew by ${after - before}, ${counts.queued} queued: ${where}`);
  } else if (res.statusCode >= 400) {
    sawError(checkErrorShape(res));
    if (after !== before) throw new Error(`refused batch enqueued ${after - before}: ${where}`);
    if (mustQueue.size > 0 && res.statusCode !== 413)
      throw new Error(`an envelope with valid trades was refused: ${where}`);
  } else {
    throw new Error(`unexpected status: ${where}`);
  }
  return queuedIds;
}

// ---------------------------------------------------------------------------
// Generators

const PROTO_KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'valueOf',
  'hasOwnProperty',
  '__defineGetter__',
  'polluted',
];

const hostileString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }), // lone surrogates included
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    'A\u0000B',
    '\r\n',
    'T1\r\nX-Evil: 1',
    '\u001b[31mred',
    '\u202eRTL',
    '𝕋𝕣𝕒𝕕𝕖',
    'e\u0301',
    '\uFEFFT1',
    'T|1',
    'NaN',
    '-NaN',
    'Infinity',
    '-Infinity',
    'null',
    'undefined',
    'true',
    '1e5',
    '1E-7',
    '0x10',
    '0b1',
    '0o7',
    ' 1',
    '1 ',
    '+1',
    '.5',
    '5.',
    '1_000',
    '1,5',
    '١٢٣',
    '１２３',
    '-0',
    '-1',
    '-0.0',
    '0',
    '0.000',
    '00001',
    '9'.repeat(40),
    `0.${'0'.repeat(40)}1`,
    `1${'0'.repeat(400)}`,
    '__proto__',
    'constructor',
    '<script>alert(1)</script>',
    "'; drop table trades; --",
    '%00',
    '../../etc/passwd',
    '${jndi:ldap://x}',
    'usd',
    'US D',
    'XXX',
    'XTS',
    'BTC',
    'buy',
    ' BUY',
    'new',
    'NEW ',
    '2026-02-30T10:00:00Z',
    '2026-11-22T10:15:30',
    '2026-11-22T24:00:00Z',
    '2026-11-22T10:15:30+14:01',
    '2026-11-22T10:15:60Z',
    '0000-01-01T00:00:00Z',
    '9999-12-31T23:59:59.999999999+14:00',
  ),
  fc.integer({ min: 64, max: 24_000 }).map((n) => 'x'.repeat(n)), // huge strings, some past BODY_LIMIT
);

const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: hostileString, weight: 6 },
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom(1e308, -1e308, 5e-324, -0, Number.MAX_SAFE_INTEGER + 2, 100, 0, -1),
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }),
);

/** A valid trade without its tradeId (the property gives each a fresh one). */
const validTemplate = fc
  .record({
    type: fc.constantFrom('NEW', 'NEW', 'AMEND', 'CANCEL'),
    accountId: fc.stringMatching(/^[A-Za-z0-9._:/@#+_-]{1,12}$/),
    bookId: fc.constantFrom('BOOK_1', 'EQ.DESK', 'b/2', 'x#y+z@w'),
    securityId: fc.stringMatching(/^[A-Z0-9]{1,12}$/),
    side: fc.constantFrom('BUY', 'SELL'),
    quantity: fc
      .tuple(fc.integer({ min: 1, max: 1_000_000 }), fc.integer({ min: 0, max: 99_999 }))
      .map(([a, b]) => `${a}.${b}`),
    price: fc
      .tuple(fc.integer({ min: 0, max: 100_000 }), fc.integer({ min: 0, max: 9999 }))
      .map(([a, b]) => `${a}.${b}`),
    currency: fc.constantFrom('USD', 'EUR', 'JPY', 'GBP', 'CHF'),
    tradeTime: fc
      .date({
        min: new Date('2000-01-01T00:00:00Z'),
        max: new Date('2099-12-31T00:00:00Z'),
        noInvalidDate: true,
      })
      .map((d) => d.toISOString()),
  })
  .map((t) => {
    const { type, ...rest } = t;
    if (type === 'NEW') return { type, ...rest } as Record<string, unknown>;
    if (type === 'AMEND') return { type, refTradeId: 'REF-1', ...rest } as Record<string, unknown>;
    return {
      type,
      refTradeId: 'REF-2',
      accountId: t.accountId,
      bookId: t.bookId,
      securityId: t.securityId,
      tradeTime: t.tradeTime,
    } as Record<string, unknown>;
  });

type Mutation =
  | { kind: 'none' }
  | { kind: 'set'; field: string; value: unknown }
  | { kind: 'delete'; field: string }
  | {
      kind: 'raw';
      edit: 'duplicate-key' | 'bom' | 'truncate' | 'trailing' | 'nested' | 'big-number';
      at: number;
    }
  | { kind: 'reuse-id'; pick: number; same: boolean };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { arbitrary: fc.constant({ kind: 'none' as const }), weight: 2 },
  {
    arbitrary: fc.record({
      kind: fc.constant('set' as const),
      field: fc.oneof(
        { arbitrary: fc.constantFrom(...TRADE_FIELDS), weight: 6 },
        fc.constantFrom(...PROTO_KEYS),
        fc.string({ maxLength: 12 }),
      ),
      value: hostileValue,
    }),
    weight: 10,
  },
  {
    arbitrary: fc.record({ kind: fc.constant('delete' as const), field: fc.constantFrom(...TRADE_FIELDS) }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('raw' as const),
      edit: fc.constantFrom(
        'duplicate-key' as const,
        'bom' as const,
        'truncate' as const,
        'trailing' as const,
        'nested' as const,
        'big-number' as const,
      ),
      at: fc.nat(),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({ kind: fc.constant('reuse-id' as const), pick: fc.nat(), same: fc.boolean() }),
    weight: 2,
  },
);

/** A valid NEW trade without its tradeId, for the examples every seed tries first. */
const exampleTrade: Record<string, unknown> = {
  type: 'NEW',
  accountId: 'ACC-1',
  bookId: 'B_1',
  securityId: 'S1',
  side: 'BUY',
  quantity: '1',
  price: '2',
  currency: 'USD',
  tradeTime: '2026-11-22T10:15:30Z',
};

let counter = 0;
/** Valid trades accepted so far (bodies as sent), for reuse-id mutations. */
const acceptedBodies: string[] = [];
const runTag = `FZ${SEED.toString(36)}${Date.now().toString(36)}`;

/** Builds the JSON text of one near-valid trade; `valid` when no mutation applies. */
function render(template: Record<string, unknown>, m: Mutation): { text: string; valid: boolean } {
  const t: Record<string, unknown> = { tradeId: `${runTag}-${++counter}`, ...template };
  if (m.kind === 'reuse-id' && acceptedBodies.length > 0) {
    const earlier = JSON.parse(acceptedBodies[m.pick % acceptedBodies.length]!) as Record<string, unknown>;
    if (m.same) return { text: JSON.stringify(earlier), valid: false }; // a duplicate: 200 / 'duplicate'
    // Another payload under the same id: a conflict (409 / 'conflict').
    const tradeTime =
      earlier.tradeTime === '2001-02-03T04:05:06Z' ? '2001-02-03T04:05:07Z' : '2001-02-03T04:05:06Z';
    return { text: JSON.stringify({ ...earlier, tradeTime }), valid: false };
  }
  if (m.kind === 'set') {
    // defineProperty: "__proto__" becomes an own key that JSON.stringify writes out, as a client could send it.
    Object.defineProperty(t, m.field, {
      value: m.value,
      enumerable: true,
      configurable: true,
      writable: true,
    });
  }
  if (m.kind === 'delete') delete t[m.field];
  let text = JSON.stringify(t);
  if (m.kind === 'raw') {
    const at = m.at % Math.max(1, text.length);
    switch (m.edit) {
      case 'duplicate-key': // the later key wins in JSON.parse: an injected earlier one must not
        text = `{"tradeId":"EVIL|ID","type":"BOGUS",${text.slice(1)}`;
        break;
      case 'bom':
        text = `\uFEFF${text}`;
        break;
      case 'truncate':
        text = text.slice(0, at);
        break;
      case 'trailing':
        text = `${text}${' ]}x'.slice(at % 4)}`;
        break;
      case 'nested':
        text = text.replace(/"quantity":"[^"]*"/, `"quantity":${'['.repeat(2000)}${']'.repeat(2000)}`);
        break;
      case 'big-number':
        text = text.replace(/"price":"([^"]*)"/, `"price":1${'0'.repeat(400)}`);
        break;
    }
  }
  return {
    text,
    valid:
      m.kind === 'none' ||
      (m.kind === 'raw' && m.edit === 'duplicate-key') ||
      (m.kind === 'reuse-id' && acceptedBodies.length === 0),
  };
}

/**
 * Runs `check` over `numRuns` values of `arb` (after the `examples`, which every
 * seed tries first, so that each branch is reached whatever the seed).
 */
async function assertProperty<T>(
  name: string,
  arb: fc.Arbitrary<T>,
  numRuns: number,
  check: (v: T) => Promise<void>,
  examples: T[] = [],
): Promise<void> {
  try {
    await fc.assert(fc.asyncProperty(arb, check), {
      seed: SEED,
      numRuns,
      examples: examples.map((e) => [e] as [T]),
    });
  } catch (err) {
    throw new Error(
      `${name}: fuzzing failed with FUZZ_SEED=${SEED} (re-run with this seed to reproduce)\n${(err as Error).message}`,
      { cause: err },
    );
  }
}

// ---------------------------------------------------------------------------

describe('property-based fuzz (fast-check)', () => {
  test('arbitrary JSON to POST /v1/trades and /v1/trades/batch: never a 5xx, errors in shape, nothing enqueued', async () => {
    await assertProperty(
      'arbitrary JSON',
      fc.tuple(fc.jsonValue({ maxDepth: 4 }), fc.boolean()),
      200,
      async ([value, asBatch]) => {
        const text = JSON.stringify(value) ?? 'null';
        if (asBatch) await postBatch(fuzz, text, undefined, new Set());
        else await postSingle(fuzz, text, 'any');
      },
    );
    // A batch envelope around arbitrary items.
    await assertProperty(
      'arbitrary batch items',
      fc.array(fc.jsonValue({ maxDepth: 3 }), { minLength: 1, maxLength: BATCH_MAX + 2 }),
      100,
      async (items) => {
        await postBatch(
          fuzz,
          JSON.stringify({ trades: items }),
          items.length <= BATCH_MAX ? items.length : undefined,
          new Set(),
        );
      },
    );
    // Raw text that is barely, or not, JSON.
    const rawText = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc.jsonValue({ maxDepth: 3 }).map((v) => (JSON.stringify(v) ?? 'null').slice(0, -1)),
      fc.constantFrom(
        '{',
        '}',
        '[]',
        '{"trades":',
        '{"trades":[}',
        'null',
        '""',
        '\uFEFF{}',
        '{"a":1}garbage',
        '{"__proto__":{"polluted":1}}',
        '{"constructor":{"prototype":{"polluted":1}}}',
        '{"trades":[{"__proto__":{"polluted":1}}]}',
        `{"trades":${'['.repeat(3000)}${']'.repeat(3000)}}`,
        '1'.repeat(5000),
        `"${'x'.repeat(BODY_LIMIT)}"`,
        '-',
        'NaN',
        'Infinity',
        '{"tradeId":1e999}',
      ),
    );
    const tooBig = `"${'x'.repeat(BODY_LIMIT)}"`;
    await assertProperty<[string, boolean]>(
      'raw text',
      fc.tuple(rawText, fc.boolean()),
      100,
      async ([text, asBatch]) => {
        if (asBatch) await postBatch(fuzz, text, undefined, new Set());
        else await postSingle(fuzz, text, 'any');
      },
      [
        [tooBig, false],
        [tooBig, true],
        ['{"trades":', true],
      ],
    );
    expectSeen(
      'single:400',
      'batch:400',
      'batch:200',
      'item:invalid',
      'code:malformed_json',
      'code:validation_failed',
      'code:body_too_large',
    );
  });

  test('near-valid trades, one at a time: a valid one is queued once, a mutated one is queued or refused whole', async () => {
    const example = exampleTrade;
    await assertProperty<[Record<string, unknown>, Mutation]>(
      'near-valid single',
      fc.tuple(validTemplate, mutation),
      300,
      async ([template, m]) => {
        const { text, valid } = render(template, m);
        const r = await postSingle(fuzz, text, valid ? 'queued' : 'any');
        if (r.status === 202) acceptedBodies.push(text);
      },
      [
        [example, { kind: 'none' }],
        [example, { kind: 'reuse-id', pick: 0, same: true }],
        [example, { kind: 'reuse-id', pick: 0, same: false }],
        [example, { kind: 'set', field: 'quantity', value: 'x'.repeat(BODY_LIMIT) }],
        [example, { kind: 'raw', edit: 'truncate', at: 5 }],
      ],
    );
    // Every outcome, and every kind of field problem, came up.
    expectSeen('single:202', 'single:200', 'single:400', 'single:409', 'single:413', 'code:malformed_json');
    expectSeen(
      ...['type', 'required', 'unknown_field', 'pattern', 'enum', 'decimal', 'range'].map(
        (c) => `detail:${c}`,
      ),
    );
  });

  test('near-valid batches: valid items queued, invalid ones refused on their own, the backlog grows by exactly the queued ones', async () => {
    const item = fc.oneof(
      { arbitrary: fc.tuple(validTemplate, fc.constant<Mutation>({ kind: 'none' })), weight: 3 },
      { arbitrary: fc.tuple(validTemplate, mutation), weight: 4 },
      { arbitrary: fc.jsonValue({ maxDepth: 2 }).map((v) => [undefined, v] as const), weight: 1 },
    );
    const envelope = fc.constantFrom(
      'plain',
      'plain',
      'plain',
      'plain',
      'extra-key',
      'proto-key',
      'duplicate-trades-key',
    );
    const example = exampleTrade;
    type Item = readonly [Record<string, unknown> | undefined, unknown];
    const none: Mutation = { kind: 'none' };
    const examples: [Item[], string][] = [
      [
        [
          [example, none],
          [example, none],
        ],
        'plain',
      ],
      [
        [
          [example, none],
          [example, { kind: 'reuse-id', pick: 0, same: true }],
          [example, { kind: 'reuse-id', pick: 0, same: false }],
          [undefined, 42],
        ],
        'plain',
      ],
      [Array.from({ length: BATCH_MAX + 1 }, (): Item => [example, none]), 'plain'],
      [[[example, none]], 'extra-key'],
    ];
    const batchArb = fc.tuple(
      fc.array(item, { minLength: 1, maxLength: BATCH_MAX + 1 }),
      envelope,
    ) as unknown as fc.Arbitrary<[Item[], string]>;
    await assertProperty(
      'near-valid batch',
      batchArb,
      150,
      async ([items, env]) => {
        const texts: string[] = [];
        const mustQueue = new Set<number>();
        items.forEach(([template, m], i) => {
          if (template === undefined) {
            texts.push(JSON.stringify(m) ?? 'null');
            return;
          }
          const r = render(template, m as Mutation);
          // A reused id may repeat an item of this very batch: only fresh, unmutated ones must be queued.
          if (r.valid && (m as Mutation).kind === 'none') mustQueue.add(i);
          texts.push(r.text);
        });
        // Items whose JSON text is broken (truncated, trailing garbage) break the whole body: that is a 400.
        let body = `{"trades":[${texts.join(',')}]}`;
        if (env === 'extra-key') body = `{"dryRun":true,${body.slice(1)}`;
        if (env === 'proto-key') body = `{"__proto__":{"polluted":true},${body.slice(1)}`;
        if (env === 'duplicate-trades-key') body = `{"trades":"not these",${body.slice(1)}`;
        let parsedOk = true;
        try {
          JSON.parse(body);
        } catch {
          parsedOk = false;
        }
        const tooMany = items.length > BATCH_MAX;
        const envelopeBad = env === 'extra-key' || env === 'proto-key';
        const queued = await postBatch(
          fuzz,
          body,
          parsedOk && !tooMany && !envelopeBad ? items.length : undefined,
          parsedOk && !tooMany && !envelopeBad && Buffer.byteLength(body) <= BODY_LIMIT
            ? mustQueue
            : new Set(),
        );
        for (const id of queued) {
          const text = texts.find((t) => t.includes(`"tradeId":"${id}"`));
          if (text) acceptedBodies.push(text);
        }
      },
      examples,
    );
    expectSeen(
      'batch:202',
      'batch:200',
      'batch:400',
      'batch:413',
      'item:queued',
      'item:duplicate',
      'item:conflict',
      'item:invalid',
    );
  });

  test('hostile headers that reach the app (content-type variants, traceparent, request-id): never a 5xx, never a half-truth', async () => {
    const contentType = fc.oneof(
      fc.constantFrom(
        'application/json',
        'application/json; charset=utf-8',
        'application/json;charset=UTF8',
        'application/json; charset="utf-8"',
        'application/json; charset=latin1',
        'application/json; charset=utf-16',
        'APPLICATION/JSON',
        'application/json;foo=bar',
        'application/json; charset=utf-8; charset=latin1',
        'application/json, text/plain',
        'application/jsonx',
        'application/json-patch+json',
        'text/json',
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        '*/*',
        'application/*',
        ' application/json',
        'application/json ',
        'application/json\t',
        ';',
        '',
        'application/json; charset=',
      ),
      fc.string({ unit: 'grapheme-ascii', maxLength: 40 }).filter((s) => !/[\r\n\0]/.test(s)),
    );
    const headerValue = fc
      .string({ unit: 'grapheme-ascii', maxLength: 80 })
      .filter((s) => !/[\r\n\0]/.test(s));
    await assertProperty(
      'headers',
      fc.tuple(validTemplate, contentType, headerValue, headerValue),
      100,
      async ([template, ct, traceparent, requestId]) => {
        const { text } = render(template, { kind: 'none' });
        const r = await postSingle(fuzz, text, 'any', {
          'content-type': ct,
          traceparent,
          'request-id': requestId,
          'x-request-id': requestId,
        });
        if (r.status === 202) acceptedBodies.push(text);
        if (r.status !== 202 && r.status !== 415)
          throw new Error(`content-type ${JSON.stringify(ct)} answered ${r.status}`);
      },
    );
  });
});

// ---------------------------------------------------------------------------

describe('huge bodies and deep nesting are refused early and fast', () => {
  async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
    const started = performance.now();
    const value = await fn();
    return { value, ms: performance.now() - started };
  }

  test('bodies past BODY_LIMIT_BYTES: 413 body_too_large in well under a second, nothing enqueued', async () => {
    const before = await big.backlog();
    for (const size of [BIG_BODY_LIMIT + 1, 5 * BIG_BODY_LIMIT, 30 * BIG_BODY_LIMIT]) {
      const payload = `{"trades":[${'"x",'.repeat(Math.ceil(size / 4))}"x"]}`;
      for (const url of ['/v1/trades', '/v1/trades/batch']) {
        const { value: res, ms } = await timed(() => post(big, url, payload));
        expect({ url, size, status: res.statusCode, code: checkErrorShape(res).code }).toEqual({
          url,
          size,
          status: 413,
          code: 'body_too_large',
        });
        expect(ms).toBeLessThan(1000);
      }
    }
    expect(await big.backlog()).toBe(before);
  });

  test('10,000 nested arrays (and 300,000, near the limit): a 400 in shape, fast, no crash; past the limit a 413', async () => {
    const before = await big.backlog();
    for (const depth of [10_000, 300_000]) {
      const nested = `${'['.repeat(depth)}${']'.repeat(depth)}`;
      const cases: [string, string, number, string][] = [
        ['/v1/trades', nested, 400, 'validation_failed'],
        ['/v1/trades', `{"tradeId":${nested}}`, 400, 'validation_failed'],
        ['/v1/trades/batch', nested, 400, 'validation_failed'],
        [
          '/v1/trades',
          `{"a":${'{"a":'.repeat(depth / 10)}1${'}'.repeat(depth / 10)}}`,
          400,
          'validation_failed',
        ],
        ['/v1/trades', '['.repeat(depth), 400, 'malformed_json'],
      ];
      for (const [url, payload, status, code] of cases) {
        const { value: res, ms } = await timed(() => post(big, url, payload));
        expect({
          url,
          depth,
          head: payload.slice(0, 12),
          status: res.statusCode,
          code: checkErrorShape(res).code,
        }).toEqual({ url, depth, head: payload.slice(0, 12), status, code });
        expect(ms).toBeLessThan(1000);
      }
      // In a batch, a deeply nested item is an invalid item: refused on its own, nothing enqueued.
      for (const payload of [`{"trades":[${nested}]}`, `{"trades":${nested}}`]) {
        const { value: res, ms } = await timed(() => post(big, '/v1/trades/batch', payload));
        expect(res.statusCode).toBe(200);
        expect(res.json<{ summary: { invalid: number; total: number } }>().summary).toMatchObject({
          total: 1,
          invalid: 1,
        });
        expect(ms).toBeLessThan(1000);
      }
    }
    const deep = 1_000_000; // 2 MB of brackets: refused by the limit before parsing
    const { value: res, ms } = await timed(() =>
      post(big, '/v1/trades', `${'['.repeat(deep)}${']'.repeat(deep)}`),
    );
    expect({ status: res.statusCode, code: checkErrorShape(res).code }).toEqual({
      status: 413,
      code: 'body_too_large',
    });
    expect(ms).toBeLessThan(1000);
    expect(await big.backlog()).toBe(before);
    // Still serving.
    expect((await big.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });

  test('over a real socket: a Content-Length past the limit is answered 413 before the body is sent; a chunked body is cut at the limit', async () => {
    const url = await big.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = new URL(url);
    const before = await big.backlog();

    // Announce 100 MB, send 10 bytes, wait for the answer.
    const announced = await rawExchange(Number(port), [
      'POST /v1/trades HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n{"trades":',
    ]);
    expect(announced.status).toBe(413);
    expect(checkErrorShape(announced).code).toBe('body_too_large');
    expect(announced.ms).toBeLessThan(1000);

    // Chunked, no length: keep sending 64 KiB chunks until the server answers.
    const chunk = 'a'.repeat(64 * 1024);
    const chunked = await rawStream(
      Number(port),
      'POST /v1/trades/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n',
      () => `${chunk.length.toString(16)}\r\n${chunk}\r\n`,
    );
    expect(chunked.status).toBe(413);
    expect(checkErrorShape(chunked).code).toBe('body_too_large');
    // What the client had handed to its socket by then; loopback buffers hold a few MB of it unread.
    expect(chunked.sentBytes).toBeLessThan(16 * BIG_BODY_LIMIT);
    expect(chunked.ms).toBeLessThan(1000);
    expect(await big.backlog()).toBe(before);
  });
});

// ---------------------------------------------------------------------------
// Raw HTTP: what a client can send that fetch and inject will not.

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  statusCode: number;
  ms: number;
  /** The connection was closed by the server. */
  closed: boolean;
}

function parseRaw(text: string, ms: number, closed: boolean): RawResponse {
  const end = text.indexOf('\r\n\r\n');
  const head = text.slice(0, end < 0 ? text.length : end).split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head[0] ?? '')?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  let body = end < 0 ? '' : text.slice(end + 4);
  if (headers['transfer-encoding'] === 'chunked') {
    let out = '';
    for (let rest = body; ;) {
      const nl = rest.indexOf('\r\n');
      const n = parseInt(rest.slice(0, nl), 16);
      if (!n) break;
      out += rest.slice(nl + 2, nl + 2 + n);
      rest = rest.slice(nl + 2 + n + 2);
    }
    body = out;
  }
  return { status, statusCode: status, headers, body, ms, closed };
}

/** Writes `parts` on a fresh connection and resolves with the first complete response. */
function rawExchange(port: number, parts: (string | Buffer)[]): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      const r = parseRaw(buf, performance.now() - started, closed);
      const length = Number(r.headers['content-length'] ?? NaN);
      if (!closed && (r.status === 0 || (Number.isFinite(length) && Buffer.byteLength(r.body) < length)))
        return;
      done = true;
      sock.destroy();
      resolve(r);
    };
    sock.setTimeout(5000, () =>
      reject(new Error(`no answer within 5 s; got ${JSON.stringify(buf.slice(0, 300))}`)),
    );
    sock.on('error', (err) => (buf ? finish(true) : reject(err)));
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      finish(false);
    });
    sock.on('end', () => finish(true));
    sock.on('connect', () => {
      for (const p of parts) sock.write(p);
    });
  });
}

/** Sends `head`, then `next()` chunks as fast as the socket takes them, until the server answers. */
function rawStream(
  port: number,
  head: string,
  next: () => string,
): Promise<RawResponse & { sentBytes: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    let sent = 0;
    let answered = false;
    const pump = () => {
      while (!answered && sent < 200 * 1024 * 1024) {
        const c = next();
        sent += c.length;
        if (!sock.write(c)) return void sock.once('drain', pump);
      }
    };
    sock.setTimeout(5000, () => reject(new Error('no answer within 5 s')));
    sock.on('error', () => undefined); // EPIPE once the server closes: expected
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      const r = parseRaw(buf, performance.now() - started, false);
      if (r.status && Buffer.byteLength(r.body) >= Number(r.headers['content-length'] ?? 0)) {
        answered = true;
        sock.destroy();
        resolve({ ...r, sentBytes: sent });
      }
    });
    sock.on('connect', () => {
      sock.write(head);
      pump();
    });
  });
}

describe('header injection', () => {
  let port = 0;
  beforeAll(async () => {
    const url = fuzz.app.server.listening
      ? `http://127.0.0.1:${(fuzz.app.server.address() as net.AddressInfo).port}`
      : await fuzz.app.listen({ port: 0, host: '127.0.0.1' });
    port = Number(new URL(url).port);
  });

  const trade = (id: string) =>
    JSON.stringify({
      tradeId: id,
      type: 'NEW',
      accountId: 'ACC-1',
      bookId: 'B',
      securityId: 'S1',
      side: 'BUY',
      quantity: '1',
      price: '1',
      currency: 'USD',
      tradeTime: '2026-11-22T10:15:30Z',
    });
  const request = (headers: string, body: string) =>
    `POST /v1/trades HTTP/1.1\r\nHost: x\r\n${headers}Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;

  test('CR, LF or NUL inside a header value, and request smuggling shapes, are refused by Node before the app: 400, nothing enqueued', async () => {
    const before = await fuzz.backlog();
    const cases = [
      'Content-Type: application/json\r\nX-Evil: a\rb\r\n',
      'Content-Type: application/json\r\nX-Evil: a\nSet-Cookie: x=1\r\n',
      'Content-Type: application/json\r\nX-Evil: a\u0000b\r\n',
      'Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n', // with Content-Length too
      'Content-Type: application/json\r\n Folded: continuation\r\n',
      'Content-Type: application/json\r\nContent-Length: 5\r\n', // two different lengths
    ];
    for (const [i, headers] of cases.entries()) {
      const res = await rawExchange(port, [request(headers, trade(`HDR-${Date.now()}-${i}`))]);
      expect({ i, status: res.status }).toEqual({ i, status: 400 });
      expect(res.headers['set-cookie']).toBeUndefined();
    }
    expect(await fuzz.backlog()).toBe(before);
    // The server is still there.
    expect(
      (await rawExchange(port, ['GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'])).status,
    ).toBe(200);
  });

  test('a duplicate Content-Type: Node keeps the first; the app answers by it, in shape', async () => {
    const before = await fuzz.backlog();
    const jsonFirst = await rawExchange(port, [
      request('Content-Type: application/json\r\nContent-Type: text/plain\r\n', trade(`DUP-${Date.now()}-a`)),
    ]);
    expect(jsonFirst.status).toBe(202);
    const textFirst = await rawExchange(port, [
      request('Content-Type: text/plain\r\nContent-Type: application/json\r\n', trade(`DUP-${Date.now()}-b`)),
    ]);
    expect({ status: textFirst.status, code: checkErrorShape(textFirst).code }).toEqual({
      status: 415,
      code: 'unsupported_media_type',
    });
    const latin1 = await rawExchange(port, [
      request(
        'Content-Type: application/json; charset=latin1\r\nContent-Type: application/json\r\n',
        trade(`DUP-${Date.now()}-c`),
      ),
    ]);
    expect({ status: latin1.status, code: checkErrorShape(latin1).code }).toEqual({
      status: 415,
      code: 'unsupported_media_type',
    });
    expect(await fuzz.backlog()).toBe(before + 1);
  });

  test('a client-supplied request id is never echoed: x-request-id is ours', async () => {
    const res = await rawExchange(port, [
      'GET /healthz HTTP/1.1\r\nHost: x\r\nRequest-Id: evil\r\nX-Request-Id: evil2\r\nConnection: close\r\n\r\n',
    ]);
    expect(res.status).toBe(200);
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('path injection', () => {
  /** Path parameters past the router's maxParamLength (512). */
  const overLong = [
    `/v1/trades/${'A'.repeat(100_000)}`,
    `/v1/trades/${'%41'.repeat(10_000)}`,
    `/v1/positions/a/b/${'c'.repeat(100_000)}`,
  ];
  const paths: string[] = [
    '/v1/trades/..%2F..%2Fetc',
    '/v1/trades/..%2F..%2Fetc%2Fpasswd',
    '/v1/trades/%2e%2e%2f%2e%2e%2fetc%2fpasswd',
    '/v1/trades/%2E%2E',
    '/v1/trades/..',
    '/v1/trades/../../etc/passwd',
    '/v1/trades/a%2Fb',
    '/v1/trades/a%5Cb',
    '/v1/trades/%00',
    '/v1/trades/T1%00',
    '/v1/trades/T1%00.json',
    '/v1/trades/T1%0D%0ASet-Cookie:%20x=1',
    '/v1/trades/T1%0ASet-Cookie:x=1',
    '/v1/trades/%E0%A4%A',
    '/v1/trades/%ZZ',
    '/v1/trades/%',
    '/v1/trades/%F0%9F%98%80',
    '/v1/trades/%C0%AE%C0%AE',
    `/v1/trades/${'A'.repeat(65)}`,
    `/v1/trades/${'A'.repeat(513)}`,
    ...overLong.slice(0, 2),
    '/v1/trades/T1;drop',
    '/v1/trades/T1|x',
    "/v1/trades/T1'%20OR%20'1'='1",
    '/v1/trades/%7B%7B7*7%7D%7D',
    '/v1/positions/..%2F..%2F/b/c',
    '/v1/positions/a/b/c%2F..%2F..%2Fetc',
    '/v1/positions/a/b/..',
    '/v1/positions/a%00/b/c',
    '/v1/positions/%2e%2e/%2e%2e/%2e%2e',
    `/v1/positions/${'a'.repeat(65)}/b/c`,
    overLong[2]!,
    '/v1/positions/a/b',
    '/v1/positions/a/b/c/d',
    '//v1/trades/T1',
    '/v1//trades/T1',
    '/v1/trades/',
    '/V1/TRADES/T1',
    '/v1/trades/T1/..',
    '/v1/./trades/T1',
    '/%2e%2e/%2e%2e/etc/passwd',
    '/v1/trades/T1?tradeId=%00&__proto__[polluted]=1',
    '/v1/trades/T1#frag',
  ];

  test.each(paths.map((p) => [p.length > 80 ? `${p.slice(0, 60)}… (${p.length} chars)` : p, p]))(
    'GET %s: 400 or 404 in the error shape, nothing leaked',
    async (_label, path) => {
      const res = await fuzz.app.inject({ method: 'GET', url: path });
      expect([400, 404]).toContain(res.statusCode);
      const e = checkErrorShape(res);
      expect([
        'invalid_parameter',
        'route_not_found',
        'bad_request',
        'trade_not_found',
        'position_not_found',
      ]).toContain(e.code);
      expect(res.headers['set-cookie']).toBeUndefined();
      // Echoed input is bounded (over-long parameters: see the known bug below), and a NUL or CR/LF never reaches a header.
      if (!overLong.includes(path)) expect(res.body.length).toBeLessThan(4096);
      for (const v of Object.values(res.headers)) expect(String(v)).not.toMatch(/[\r\n\0]/);
    },
  );

  // KNOWN BUG (reported, src/ is not ours to change here): fromFrameworkError in
  // src/producer/app.ts answers FST_ERR_MAX_PARAM_LENGTH through its default branch,
  // `new ApiError('bad_request', err.message)`, and Fastify's message quotes the whole
  // path: an over-long path parameter is reflected whole into error.message (100 KB in,
  // 100 KB out through inject; up to Node's 16 KB header limit over HTTP), where every
  // other error bounds what it echoes (40 or 200 characters). test.failing passes while
  // the bug is there and fails once it is fixed: then make this a plain test.
  test('an over-long path parameter is not echoed whole into error.message', async () => {
    for (const path of overLong) {
      const res = await fuzz.app.inject({ method: 'GET', url: path });
      expect(res.body.length).toBeLessThan(4096);
      expect(res.statusCode).toBe(400);
    }
  });

  test('the same paths over a real socket (no client-side normalisation), POST and GET', async () => {
    const url = fuzz.app.server.listening
      ? `http://127.0.0.1:${(fuzz.app.server.address() as net.AddressInfo).port}`
      : await fuzz.app.listen({ port: 0, host: '127.0.0.1' });
    const port = Number(new URL(url).port);
    const before = await fuzz.backlog();
    for (const path of paths.filter((p) => !p.includes('#'))) {
      for (const method of ['GET', 'POST']) {
        const res = await rawExchange(port, [
          `${method} ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`,
        ]);
        // 431 (headers too large) is Node's answer to a request line past its header limit.
        expect({ path: path.slice(0, 80), method, ok: [400, 404, 431].includes(res.status) }).toEqual({
          path: path.slice(0, 80),
          method,
          ok: true,
        });
        if (res.body.startsWith('{"error":{')) checkErrorShape(res);
      }
    }
    expect(await fuzz.backlog()).toBe(before);
  });
});
