/**
 * The dashboard over real HTTP (the producer app listening on a loopback port),
 * with a real Redis, PostgreSQL and an in-process worker: access control (401
 * without credentials, login and session cookie, Basic, forged cookies, CSRF,
 * cross-origin refusals, read-only mode), escaping, the partition counts of the
 * overview (no bull-board view any more: /dashboard/queues is 404), and the operator flows:
 * skip the head of a halted partition, resume it, replay the skipped trade at
 * the tail of its partition once it can apply.
 */
import { once } from 'node:events';

import type { FastifyInstance } from 'fastify';
import IORedis from 'ioredis';

import { loadProducerConfig } from '../../src/config';
import { createDb, getPosition, migrateToLatest, type DbHandle } from '../../src/db';
import { partitionKey } from '../../src/domain';
import { createLogger } from '../../src/observability/logger';
import { buildProducerApp, producerRedisOptions } from '../../src/producer';
import { PartitionAdmin, PartitionQueue, readHead } from '../../src/queue';
import { runWorker } from '../../src/worker/main';
import { createTestDatabase, redisUrl, testNamespace, type TestDatabase } from '../helpers/isolation';
import { waitFor } from '../helpers/processes';
import { sample } from '../helpers/prom';

jest.setTimeout(120_000);

const USER = 'ops';
const PASSWORD = 'correct horse battery staple';
const silent = createLogger({ level: 'silent', name: 'test' });

let database: TestDatabase;
let dbHandle: DbHandle;
let redis: IORedis;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  dbHandle = createDb({ databaseUrl: database.url, poolSize: 4 });
  await migrateToLatest(dbHandle.db);
  redis = new IORedis(redisUrl(), producerRedisOptions());
  if (redis.status !== 'ready') await once(redis, 'ready');
});

afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await redis.quit();
  await dbHandle.close();
  await database.drop();
});

interface Dashboard {
  app: FastifyInstance;
  url: string;
  queue: PartitionQueue;
  admin: PartitionAdmin;
  namespace: string;
}

async function start(opts: { readOnly?: boolean; namespace?: string } = {}): Promise<Dashboard> {
  const namespace = opts.namespace ?? testNamespace('dashboard');
  const queue = new PartitionQueue({ redis, namespace });
  const admin = new PartitionAdmin(redis, namespace);
  const app = buildProducerApp({
    queue,
    redis,
    db: dbHandle.db,
    config: loadProducerConfig({ TRADEFLEET_NAMESPACE: namespace }),
    logger: silent,
    // API bearer tokens on: the dashboard has its own credentials and is not behind them.
    authTokens: ['api-token-for-clients'],
    dashboard: { user: USER, password: PASSWORD, readOnly: opts.readOnly ?? false, admin },
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  cleanups.push(async () => {
    await app.close();
  });
  return { app, url, queue, admin, namespace };
}

const basic = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;

async function login(d: Dashboard): Promise<string> {
  const res = await fetch(`${d.url}/dashboard/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: d.url },
    body: new URLSearchParams({ user: USER, password: PASSWORD, next: '/dashboard' }),
  });
  expect(res.status).toBe(303);
  expect(res.headers.get('location')).toBe('/dashboard');
  const setCookie = res.headers.get('set-cookie') ?? '';
  expect(setCookie).toMatch(/HttpOnly/);
  expect(setCookie).toMatch(/SameSite=Strict/);
  expect(setCookie).toMatch(/Path=\/dashboard/);
  return setCookie.split(';')[0]!;
}

async function page(d: Dashboard, path: string, cookie: string): Promise<string> {
  const res = await fetch(`${d.url}${path}`, { headers: { cookie, accept: 'text/html' } });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-security-policy')).toMatch(/script-src 'self'/);
  return res.text();
}

const csrfOf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)?.[1];

/** The text a person reads: tags removed, whitespace collapsed, entities of the tests decoded. */
const visible = (html: string) =>
  html
    .replace(/<[^>]*>/g, ' ')
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ')
    .replace(/ ([,.)])/g, '$1');

async function act(
  d: Dashboard,
  action: string,
  fields: Record<string, string>,
  auth: { cookie?: string; authorization?: string },
  headers: Record<string, string> = {},
): Promise<{ status: number; body: { ok?: boolean; message?: string } | string }> {
  const res = await fetch(`${d.url}/dashboard/actions/${action}`, {
    method: 'POST',
    redirect: 'manual',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
      origin: d.url,
      ...(auth.cookie ? { cookie: auth.cookie } : {}),
      ...(auth.authorization ? { authorization: auth.authorization } : {}),
      ...headers,
    },
    body: new URLSearchParams(fields),
  });
  const text = await res.text();
  let body: { ok?: boolean; message?: string } | string = text;
  try {
    body = JSON.parse(text) as { ok?: boolean; message?: string };
  } catch {
    // an HTML page
  }
  return { status: res.status, body };
}

let n = 0;
function trade(p: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  n += 1;
  return {
    tradeId: `DSH-${process.pid}-${n}`,
    type: 'NEW',
    accountId: `ACC-${p}`,
    bookId: 'BOOK',
    securityId: `SEC-${p}`,
    side: 'BUY',
    quantity: '10',
    price: '2.5',
    currency: 'EUR',
    tradeTime: '2026-11-22T10:15:30.123Z',
    ...overrides,
  };
}

async function enqueue(d: Dashboard, t: Record<string, unknown>): Promise<number> {
  const res = await fetch(`${d.url}/v1/trades`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer api-token-for-clients' },
    body: JSON.stringify(t),
  });
  expect([200, 202]).toContain(res.status);
  return ((await res.json()) as { seq: number }).seq;
}

describe('access', () => {
  let d: Dashboard;
  beforeAll(async () => {
    d = await start();
  });

  it('answers 401 without credentials: a login page for browsers, a Basic challenge for the rest', async () => {
    const browser = await fetch(`${d.url}/dashboard`, { headers: { accept: 'text/html' } });
    expect(browser.status).toBe(401);
    const html = await browser.text();
    expect(html).toMatch(/<form method="post" action="\/dashboard\/login">/);
    expect(html).not.toMatch(/Queue overview/);
    const api = await fetch(`${d.url}/dashboard/partition?key=a_b_c`);
    expect(api.status).toBe(401);
    expect(api.headers.get('www-authenticate')).toMatch(/^Basic realm="tradefleet-dashboard"/);
    // Unknown paths under /dashboard are behind the same gate: they say nothing without credentials.
    expect((await fetch(`${d.url}/dashboard/queues`)).status).toBe(401);
    // Wrong password, wrong user, a forged or tampered session cookie.
    const wrong = `Basic ${Buffer.from(`${USER}:not-the-password`).toString('base64')}`;
    expect((await fetch(`${d.url}/dashboard`, { headers: { authorization: wrong } })).status).toBe(401);
    const cookie = await login(d);
    const [name, value] = cookie.split('=') as [string, string];
    const parts = decodeURIComponent(value).split('.');
    const forged = `${name}=${encodeURIComponent(`${parts[0]}.${Number(parts[1]) + 1000}.${parts[2]}`)}`;
    expect((await fetch(`${d.url}/dashboard`, { headers: { cookie: forged } })).status).toBe(401);
    // A failed login says so, with a 401.
    const failed = await fetch(`${d.url}/dashboard/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: d.url },
      body: new URLSearchParams({ user: USER, password: 'guess', next: '/dashboard' }),
    });
    expect(failed.status).toBe(401);
    expect(await failed.text()).toMatch(/Wrong user or password/);
  });

  it('lets in a session cookie and Basic credentials; the API keeps its bearer tokens', async () => {
    const cookie = await login(d);
    expect(await page(d, '/dashboard', cookie)).toMatch(/Queue overview/);
    const viaBasic = await fetch(`${d.url}/dashboard`, { headers: { authorization: basic } });
    expect(viaBasic.status).toBe(200);
    // No bull-board any more (no BullMQ queue left to show): its routes are gone.
    expect((await fetch(`${d.url}/dashboard/queues`, { headers: { cookie } })).status).toBe(404);
    expect((await fetch(`${d.url}/dashboard/queues/api/queues`, { headers: { cookie } })).status).toBe(404);
    expect(await page(d, '/dashboard', cookie)).not.toMatch(/bull-board|drain token/i);
    // The API still wants its bearer token; dashboard credentials do not open it.
    expect((await fetch(`${d.url}/v1/trades/X-1`, { headers: { cookie } })).status).toBe(401);
  });

  it('refuses actions without the CSRF token, from another origin, and a redirect off the dashboard', async () => {
    const cookie = await login(d);
    const pk = partitionKey('ACC-csrf', 'BOOK', 'SEC-csrf');
    await d.admin.halt(pk, { code: 'test', message: 'csrf test' });
    expect((await act(d, 'resume', { partitionKey: pk }, { cookie })).status).toBe(403);
    expect((await act(d, 'resume', { partitionKey: pk, _csrf: 'forged' }, { cookie })).status).toBe(403);
    const csrf = csrfOf(await page(d, '/dashboard', cookie))!;
    expect(csrf).toBeDefined();
    expect(
      (
        await act(
          d,
          'resume',
          { partitionKey: pk, _csrf: csrf },
          { cookie },
          { origin: 'https://evil.example' },
        )
      ).status,
    ).toBe(403);
    expect(await redis.hexists(d.queue.keys.halted, pk)).toBe(1);
    // The right token from this origin: done; a browser is sent back to a dashboard page only.
    const res = await fetch(`${d.url}/dashboard/actions/resume`, {
      method: 'POST',
      redirect: 'manual',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        origin: d.url,
        cookie,
        accept: 'text/html',
      },
      body: new URLSearchParams({ partitionKey: pk, _csrf: csrf, back: 'https://evil.example/x' }),
    });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/dashboard');
    expect(res.headers.get('set-cookie')).toMatch(/tf_dashboard_flash=ok/);
    expect(await redis.hexists(d.queue.keys.halted, pk)).toBe(0);
  });

  it('escapes what it shows: a halt reason with markup is text', async () => {
    const cookie = await login(d);
    const pk = partitionKey('ACC-xss', 'BOOK', 'SEC-xss');
    await d.admin.halt(pk, { code: 'x"><b>', message: '<script>alert(1)</script>' });
    const html = await page(d, '/dashboard', cookie);
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).not.toContain('<script>alert');
    expect(html).not.toContain('x"><b>');
    await d.admin.resume(pk);
  });

  it('read-only mode: pages without action buttons, every action answers 403', async () => {
    const ro = await start({ readOnly: true, namespace: d.namespace });
    const pk = partitionKey('ACC-ro', 'BOOK', 'SEC-ro');
    await ro.admin.halt(pk, { code: 'test', message: 'read-only test' });
    const cookie = await login(ro);
    const html = await page(ro, '/dashboard', cookie);
    expect(html).toContain(pk);
    expect(html).toMatch(/read-only/);
    expect(html).not.toMatch(/data-action="resume"/);
    const csrf = csrfOf(await page(d, '/dashboard', await login(d)));
    for (const [action, fields] of [
      ['resume', { partitionKey: pk }],
      ['retry-head', { partitionKey: pk }],
      ['skip-head', { partitionKey: pk, seq: '1' }],
      ['replay', { partitionKey: pk, seq: '1' }],
      ['halt', { partitionKey: pk }],
    ] as const) {
      const r = await act(ro, action, { ...fields, _csrf: csrf ?? '' }, { authorization: basic });
      expect({ action, status: r.status }).toEqual({ action, status: 403 });
    }
    expect(await redis.hexists(ro.queue.keys.halted, pk)).toBe(1);
    const metrics = await (
      await fetch(`${ro.url}/metrics`, { headers: { authorization: 'Bearer api-token-for-clients' } })
    ).text();
    expect(
      sample(metrics, 'tradefleet_dashboard_actions_total', { action: 'resume', result: 'refused' }),
    ).toBe(1);
    await ro.admin.resume(pk);
  });
});

describe('overview partition counts', () => {
  it('shows partitions ready / leased / retrying / with an expired lease, as readLeaseCounts counts them', async () => {
    // Its own namespace and no worker: nothing claims these partitions.
    const d = await start();
    const cookie = await login(d);
    const counts = async () => {
      const html = await page(d, '/dashboard', cookie);
      const of = (id: string) => new RegExp(`id="${id}">(\\d+)<`).exec(html)?.[1];
      return {
        text: visible(html),
        ready: of('partitions-ready'),
        leased: of('partitions-leased'),
        retrying: of('partitions-retrying'),
        expired: of('partitions-expired'),
      };
    };
    expect(await counts()).toMatchObject({ ready: '0', leased: '0', retrying: '0', expired: '0' });

    for (const p of ['count-a', 'count-b', 'count-c']) await enqueue(d, trade(p));
    // A halted partition is not claimable: not ready.
    const halted = partitionKey('ACC-count-c', 'BOOK', 'SEC-count-c');
    await d.admin.halt(halted, { code: 'test', message: 'counts test' });
    const shown = await counts();
    expect(shown).toMatchObject({ ready: '2', leased: '0', retrying: '0', expired: '0' });
    expect(shown.text).toMatch(/2 \/ 0 partitions ready \/ leased/);
    expect(shown.text).toMatch(/0 \/ 0 partitions retrying \/ with an expired lease/);
    expect(shown.text).not.toMatch(/token/i);
    await d.admin.resume(halted);
    expect(await counts()).toMatchObject({ ready: '3', leased: '0' });
  });
});

describe('operator flows with a worker (halt policy)', () => {
  it('skip the head of a halted partition, resume it, then replay the skipped trade at the tail', async () => {
    const d = await start();
    const worker = await runWorker(
      {
        REDIS_URL: redisUrl(),
        DATABASE_URL: database.url,
        TRADEFLEET_NAMESPACE: d.namespace,
        PERMANENT_FAILURE_POLICY: 'halt',
        METRICS_PORT: '0',
      },
      { logger: silent, handleSignals: false, reconcileIntervalMs: 500 },
    );
    cleanups.push(() => worker.close());
    const cookie = await login(d);
    const p = 'flow';
    const pk = partitionKey(`ACC-${p}`, 'BOOK', `SEC-${p}`);
    const later = trade(p);
    const amend = trade(p, { type: 'AMEND', refTradeId: `${later.tradeId}-NEW`, quantity: '7', price: '3' });
    // seq 1: an AMEND of a trade not enqueued yet (halts the partition); seq 2: a NEW.
    expect(await enqueue(d, amend)).toBe(1);
    expect(await enqueue(d, later)).toBe(2);
    await waitFor('the partition to halt', async () => (await redis.hexists(d.queue.keys.halted, pk)) === 1);

    const overview = await page(d, '/dashboard', cookie);
    expect(overview).toContain(pk);
    expect(overview).toMatch(/unknown_ref/);
    expect(visible(overview)).toMatch(/Skip head \(seq 1\)/);
    const csrf = csrfOf(overview)!;
    const partitionHtml = await page(d, `/dashboard/partition?key=${encodeURIComponent(pk)}`, cookie);
    expect(partitionHtml).toContain(String(amend.tradeId));
    expect(visible(partitionHtml)).toMatch(/last applied seq 0, next queued seq 1/);

    // The seq the operator saw must still be the head.
    const stale = await act(d, 'skip-head', { partitionKey: pk, seq: '2', _csrf: csrf }, { cookie });
    expect(stale).toMatchObject({ status: 409, body: { ok: false } });
    const skipped = await act(d, 'skip-head', { partitionKey: pk, seq: '1', _csrf: csrf }, { cookie });
    expect(skipped).toMatchObject({ status: 200, body: { ok: true } });
    const letter = await dbHandle.db
      .selectFrom('dead_letters')
      .selectAll()
      .where('partition_key', '=', pk)
      .executeTakeFirstOrThrow();
    expect(letter).toMatchObject({
      trade_id: amend.tradeId,
      seq: '1',
      reason_code: 'operator_skip',
      replayed_at: null,
    });
    expect((await readHead(redis, d.queue.keys, pk, 1))[0]?.seq).toBe(2);

    // Resume: seq 2 applies.
    expect(await act(d, 'resume', { partitionKey: pk, _csrf: csrf }, { cookie })).toMatchObject({
      status: 200,
    });
    await waitFor('seq 2 applied', async () => (await getPosition(dbHandle.db, pk))?.lastSeq === 2);

    // A replay now would fail again (its NEW is still missing)... enqueue the NEW it refers to (seq 3), then replay.
    await enqueue(d, trade(p, { tradeId: `${later.tradeId}-NEW`, quantity: '5', price: '2' }));
    await waitFor('seq 3 applied', async () => (await getPosition(dbHandle.db, pk))?.lastSeq === 3);
    const replay = await act(d, 'replay', { partitionKey: pk, seq: '1', _csrf: csrf }, { cookie });
    expect(replay).toMatchObject({ status: 200, body: { ok: true } });
    expect((replay.body as { message: string }).message).toMatch(/queued as seq 4/);
    // Applied at the tail (seq 4), not as a duplicate of its dead letter.
    await waitFor('the replay applied', async () => (await getPosition(dbHandle.db, pk))?.lastSeq === 4);
    const applied = await dbHandle.db
      .selectFrom('trades')
      .selectAll()
      .where('trade_id', '=', String(amend.tradeId))
      .executeTakeFirstOrThrow();
    expect(applied).toMatchObject({ seq: '4', type: 'AMEND' });
    const position = (await getPosition(dbHandle.db, pk))!;
    expect(position.tradeCount).toBe(3);
    // seq 2 buys 10; seq 3 buys 5, amended by the replay to 7: 17.
    expect(position.netQuantity).toMatch(/^17(\.0*)?$/);
    const record = await dbHandle.db
      .selectFrom('dead_letter_replays')
      .selectAll()
      .where('partition_key', '=', pk)
      .execute();
    expect(record).toEqual([
      expect.objectContaining({ seq: '1', trade_id: amend.tradeId, requested_by: USER, enqueued_seq: '4' }),
    ]);
    expect(
      (
        await dbHandle.db
          .selectFrom('dead_letters')
          .select('replayed_at')
          .where('partition_key', '=', pk)
          .executeTakeFirstOrThrow()
      ).replayed_at,
    ).toBeInstanceOf(Date);

    // Replaying again is refused: applied.
    const again = await act(d, 'replay', { partitionKey: pk, seq: '1', _csrf: csrf }, { cookie });
    expect(again).toMatchObject({ status: 409, body: { ok: false } });
    expect((again.body as { message: string }).message).toMatch(/already applied \(seq 4/);

    const deadLetters = await page(d, '/dashboard/dead-letters', cookie);
    expect(visible(deadLetters)).toMatch(
      new RegExp(`replayed by ${USER} at \\S+ as seq 4 → applied \\(seq 4\\)`),
    );

    // Search by tradeId and by partition key.
    const found = await page(d, `/dashboard/search?q=${encodeURIComponent(String(amend.tradeId))}`, cookie);
    expect(visible(found)).toMatch(/Applied seq 4 of ACC-flow_BOOK_SEC-flow/);
    const toPartition = await fetch(`${d.url}/dashboard/search?q=${encodeURIComponent(pk)}`, {
      headers: { cookie },
      redirect: 'manual',
    });
    expect(toPartition.status).toBe(303);
    expect(toPartition.headers.get('location')).toBe(`/dashboard/partition?key=${encodeURIComponent(pk)}`);

    const metrics = await (
      await fetch(`${d.url}/metrics`, { headers: { authorization: 'Bearer api-token-for-clients' } })
    ).text();
    expect(
      sample(metrics, 'tradefleet_dashboard_actions_total', { action: 'skip_head', result: 'done' }),
    ).toBe(1);
    expect(
      sample(metrics, 'tradefleet_dashboard_actions_total', { action: 'skip_head', result: 'refused' }),
    ).toBe(1);
    expect(sample(metrics, 'tradefleet_dashboard_actions_total', { action: 'replay', result: 'done' })).toBe(
      1,
    );
  });
});
