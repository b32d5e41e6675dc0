/**
 * Metrics and tracing against known activity, with a real Redis and
 * PostgreSQL: the producer (in-process, app.inject) and a worker (runWorker,
 * in-process, serving /metrics on its own port). Counters are read back from
 * the expositions and must equal what the test did; both expositions must
 * pass `promtool check metrics`; a trace started by the request's
 * `traceparent` reaches the worker's transaction through the queue.
 */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';

import { trace } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import type { FastifyInstance } from 'fastify';
import IORedis from 'ioredis';

import { loadProducerConfig } from '../../src/config';
import { createDb, migrateToLatest, type DbHandle } from '../../src/db';
import { canonicalTradeJson, partitionKey, payloadHash, validateTrade } from '../../src/domain';
import { createLogger } from '../../src/observability/logger';
import { createTracing } from '../../src/observability/tracing';
import { buildProducerApp, producerRedisOptions } from '../../src/producer';
import { decodeTradeIndex, PartitionAdmin, PartitionQueue, readHead } from '../../src/queue';
import { runWorker, type RunningWorker } from '../../src/worker/main';
import { createTestDatabase, redisUrl, testNamespace, type TestDatabase } from '../helpers/isolation';
import { waitFor } from '../helpers/processes';
import { sample } from '../helpers/prom';
import { freePort } from '../helpers/servers';
import { tool } from '../helpers/tools';

jest.setTimeout(120_000);

const promtool = tool('promtool', 'prometheus');
const silent = createLogger({ level: 'silent', name: 'test' });

let database: TestDatabase;
let dbHandle: DbHandle;
let redis: IORedis;
let probe: IORedis;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  dbHandle = createDb({ databaseUrl: database.url, poolSize: 4 });
  await migrateToLatest(dbHandle.db);
  redis = new IORedis(redisUrl(), producerRedisOptions());
  // The producer's client fails fast (no offline queue): wait until it is connected.
  if (redis.status !== 'ready') await once(redis, 'ready');
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

function producer(namespace: string, tracing = false): { app: FastifyInstance; queue: PartitionQueue } {
  const queue = new PartitionQueue({ redis, namespace });
  const config = loadProducerConfig({ TRADEFLEET_NAMESPACE: namespace });
  const app = buildProducerApp({
    queue,
    redis,
    db: dbHandle.db,
    config,
    logger: silent,
    tracing: createTracing(tracing),
  });
  cleanups.push(async () => {
    await app.close();
  });
  return { app, queue };
}

async function worker(namespace: string, env: Record<string, string> = {}): Promise<RunningWorker> {
  const w = await runWorker(
    {
      REDIS_URL: redisUrl(),
      DATABASE_URL: database.url,
      TRADEFLEET_NAMESPACE: namespace,
      WORKER_BATCH_SIZE: '8',
      WORKER_CONCURRENCY: '4',
      METRICS_PORT: '0',
      ...env,
    },
    { logger: silent, handleSignals: false, reconcileIntervalMs: 500 },
  );
  cleanups.push(() => w.close());
  return w;
}

let seq = 0;
function newTrade(p: number, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  seq += 1;
  return {
    tradeId: `OBS-${process.pid}-${seq}`,
    type: 'NEW',
    accountId: `ACC-${p}`,
    bookId: 'BOOK',
    securityId: `SEC-${p}`,
    side: seq % 2 ? 'BUY' : 'SELL',
    quantity: `${seq}`,
    price: '10.5',
    currency: 'USD',
    tradeTime: '2026-11-22T10:15:30.123Z',
    ...overrides,
  };
}

async function post(app: FastifyInstance, url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await app.inject({
    method: 'POST',
    url,
    payload: body as object,
    headers: { 'content-type': 'application/json', ...headers },
  });
  return { status: res.statusCode, body: res.json() as Record<string, unknown> };
}

async function scrape(url: string): Promise<string> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text();
}

function checkWithPromtool(text: string): void {
  const r = spawnSync(promtool.require(), ['check', 'metrics'], { input: text, encoding: 'utf8' });
  expect({ status: r.status, problems: `${r.stdout}${r.stderr}`.trim() }).toEqual({
    status: 0,
    problems: '',
  });
}

describe('metrics against known activity', () => {
  /** The expositions after the activity below, for promtool. */
  const expositions = { producer: '', worker: '' };

  it('producer and worker counters, histograms and gauges equal what was done', async () => {
    const namespace = testNamespace('metrics');
    const { app } = producer(namespace);

    // 40 NEW trades over 5 partitions in one batch, and 2 AMENDs of trades that do not exist (dead-lettered).
    const news = Array.from({ length: 40 }, (_, i) => newTrade(i % 5));
    const amends = [0, 1].map((p) =>
      newTrade(p, {
        type: 'AMEND',
        refTradeId: `NOPE-${p}`,
        side: 'BUY',
        quantity: '1',
        price: '1',
        currency: 'USD',
      }),
    );
    const batch = await post(app, '/v1/trades/batch', { trades: [...news, ...amends] });
    expect(batch.status).toBe(202);
    // 3 repeats (duplicates), 1 conflict, 2 invalid.
    for (const t of news.slice(0, 3)) expect((await post(app, '/v1/trades', t)).status).toBe(200);
    expect((await post(app, '/v1/trades', { ...news[3], quantity: '999' })).status).toBe(409);
    expect((await post(app, '/v1/trades', { ...newTrade(9), quantity: 'ten' })).status).toBe(400);
    expect((await post(app, '/v1/trades', { ...newTrade(9), currency: 'usd' })).status).toBe(400);

    const w = await worker(namespace, { METRICS_PORT: String(await freePort()) });
    expect(w.metricsServer).toBeDefined();
    const workerUrl = `${w.metricsServer!.url}/metrics`;
    const producerMetrics = async () => (await app.inject({ method: 'GET', url: '/metrics' })).body;

    // Drained: 42 trades consumed by the worker.
    const workerText = await waitFor(
      'the worker to commit all 42 trades',
      async () => {
        const t = await scrape(workerUrl);
        return sample(t, 'tradefleet_worker_batch_size_sum') === 42 ? t : undefined;
      },
      60_000,
      200,
    );
    expect(sample(workerText, 'tradefleet_worker_trades_total', { outcome: 'applied' })).toBe(40);
    expect(sample(workerText, 'tradefleet_worker_trades_total', { outcome: 'dead_lettered' })).toBe(2);
    expect(sample(workerText, 'tradefleet_worker_trades_total', { outcome: 'duplicate' })).toBe(0);
    expect(sample(workerText, 'tradefleet_worker_trades_total', { outcome: 'redelivered' })).toBe(0);
    expect(sample(workerText, 'tradefleet_worker_dead_letters_total', { reason_code: 'unknown_ref' })).toBe(
      2,
    );
    expect(sample(workerText, 'tradefleet_worker_dead_letters_total', { reason_code: 'conflict' })).toBe(0);
    // Batches of at most 8 trades: at least ceil(42 / 8) of them, every one committed.
    const batches = sample(workerText, 'tradefleet_worker_batch_size_count')!;
    expect(batches).toBeGreaterThanOrEqual(Math.ceil(42 / 8));
    expect(sample(workerText, 'tradefleet_worker_batch_size_bucket', { le: '8' })).toBe(batches);
    expect(
      sample(workerText, 'tradefleet_worker_batch_duration_seconds_count', { result: 'committed' }),
    ).toBe(batches);
    expect(sample(workerText, 'tradefleet_worker_batch_duration_seconds_count', { result: 'failed' })).toBe(
      0,
    );
    // One end-to-end latency per committed trade, each below a minute.
    expect(sample(workerText, 'tradefleet_worker_end_to_end_latency_seconds_count')).toBe(42);
    expect(sample(workerText, 'tradefleet_worker_end_to_end_latency_seconds_bucket', { le: '60' })).toBe(42);
    expect(sample(workerText, 'tradefleet_worker_end_to_end_latency_seconds_sum')).toBeGreaterThan(0);
    expect(sample(workerText, 'tradefleet_worker_lease_losses_total', { reason: 'epoch' })).toBe(0);
    expect(
      sample(workerText, 'tradefleet_worker_retries_total', { kind: 'batch', cause: 'connection' }),
    ).toBe(0);
    expect(sample(workerText, 'tradefleet_worker_circuit_breaker_state', { state: 'closed' })).toBe(1);
    expect(sample(workerText, 'tradefleet_worker_circuit_breaker_state', { state: 'open' })).toBe(0);
    expect(sample(workerText, 'tradefleet_worker_concurrency')).toBe(4);
    expect(sample(workerText, 'tradefleet_worker_active_drains')).toBeLessThanOrEqual(4);
    expect(sample(workerText, 'tradefleet_worker_process_cpu_user_seconds_total')).toBeGreaterThan(0);

    let producerText = await producerMetrics();
    expect(sample(producerText, 'tradefleet_producer_trades_total', { outcome: 'queued' })).toBe(42);
    expect(sample(producerText, 'tradefleet_producer_trades_total', { outcome: 'duplicate' })).toBe(3);
    expect(sample(producerText, 'tradefleet_producer_trades_total', { outcome: 'conflict' })).toBe(1);
    expect(sample(producerText, 'tradefleet_producer_trades_total', { outcome: 'invalid' })).toBe(2);
    expect(
      sample(producerText, 'tradefleet_producer_http_request_duration_seconds_count', {
        method: 'POST',
        route: '/v1/trades',
        status_class: '2xx',
      }),
    ).toBe(3);

    // Queue gauges after the drain (read from Redis on scrape, cached 2 s): nothing left.
    producerText = await waitFor(
      'the queue gauges to show the drained queue',
      async () => {
        const t = await producerMetrics();
        return sample(t, 'tradefleet_queue_backlog') === 0 &&
          sample(t, 'tradefleet_queue_pending_partitions') === 0
          ? t
          : undefined;
      },
      10_000,
      250,
    );
    expect(sample(producerText, 'tradefleet_queue_oldest_waiting_age_seconds')).toBe(0);
    expect(sample(producerText, 'tradefleet_queue_halted_partitions')).toBe(0);

    // A halted partition with 3 trades waiting: halted 1, backlog 3, pending 0 (halted is not pending).
    const admin = new PartitionAdmin(probe, namespace);
    const pk = partitionKey('ACC-77', 'BOOK', 'SEC-77');
    await admin.halt(pk, { code: 'test', message: 'halted by the metrics test' });
    for (let i = 0; i < 3; i++) expect((await post(app, '/v1/trades', newTrade(77))).status).toBe(202);
    for (const url of ['producer', workerUrl]) {
      const text = await waitFor(
        `${url}: the queue gauges to show the halted partition`,
        async () => {
          const t = url === 'producer' ? await producerMetrics() : await scrape(url);
          return sample(t, 'tradefleet_queue_halted_partitions') === 1 &&
            sample(t, 'tradefleet_queue_backlog') === 3
            ? t
            : undefined;
        },
        10_000,
        250,
      );
      expect(sample(text, 'tradefleet_queue_pending_partitions')).toBe(0);
    }

    // The worker's endpoint serves /metrics only.
    expect((await fetch(`${w.metricsServer!.url}/other`)).status).toBe(404);

    expositions.producer = await producerMetrics();
    expositions.worker = await scrape(workerUrl);
  });

  // Whenever promtool is installed, and always under CI (a missing promtool then fails it).
  (promtool.skipReason ? it.skip : it)('promtool check metrics accepts both expositions', () => {
    expect(expositions.producer).toContain('tradefleet_queue_backlog');
    expect(expositions.worker).toContain('tradefleet_worker_end_to_end_latency_seconds_bucket');
    checkWithPromtool(expositions.producer);
    checkWithPromtool(expositions.worker);
  });

  it('a worker whose METRICS_PORT is taken keeps draining without metrics', async () => {
    const port = await freePort();
    const namespace = testNamespace('metrics-port');
    const first = await worker(namespace, { METRICS_PORT: String(port) });
    expect(first.metricsServer?.port).toBe(port);
    const second = await worker(namespace, { METRICS_PORT: String(port) });
    expect(second.metricsServer).toBeUndefined();
    const { app } = producer(namespace);
    expect((await post(app, '/v1/trades', newTrade(3))).status).toBe(202);
    await waitFor('the trade to be applied', async () => {
      const r = await dbHandle.db
        .selectFrom('trades')
        .select('trade_id')
        .where('partition_key', '=', partitionKey('ACC-3', 'BOOK', 'SEC-3'))
        .execute();
      return r.length > 0;
    });
  });
});

describe('tracing', () => {
  const exporter = new InMemorySpanExporter();
  beforeAll(() => {
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
    );
  });
  afterAll(() => trace.disable());

  it('links the producer request to the worker transaction through the queue, without changing the payload hash', async () => {
    const namespace = testNamespace('tracing');
    const { app, queue } = producer(namespace, true);
    const clientTrace = '0af7651916cd43dd8448eb211c80319c';
    const clientSpan = 'b7ad6b7169203331';
    const t = newTrade(5);
    const res = await post(app, '/v1/trades', t, { traceparent: `00-${clientTrace}-${clientSpan}-01` });
    expect(res.status).toBe(202);

    const enqueue = exporter.getFinishedSpans().find((s) => s.name === 'tradefleet enqueue');
    expect(enqueue).toBeDefined();
    expect(enqueue!.spanContext().traceId).toBe(clientTrace);
    expect(enqueue!.parentSpanContext?.spanId).toBe(clientSpan);

    // In the queue: the trace context sits beside the body; body and hash are the trade's own.
    const pk = partitionKey('ACC-5', 'BOOK', 'SEC-5');
    const [head] = await readHead(probe, queue.keys, pk, 1);
    const v = validateTrade(t);
    if (!v.ok) throw new Error('invalid test trade');
    expect(head!.traceparent).toBe(`00-${clientTrace}-${enqueue!.spanContext().spanId}-01`);
    expect(head!.body).toBe(canonicalTradeJson(v.trade));
    expect(decodeTradeIndex((await probe.hget(queue.keys.backlog, v.trade.tradeId))!).payloadHash).toBe(
      payloadHash(v.trade),
    );
    // The same trade under another trace is still a duplicate.
    const again = await post(app, '/v1/trades', t, {
      traceparent: `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`,
    });
    expect(again.body).toMatchObject({ duplicate: true, seq: head!.seq });

    await worker(namespace, { TRACING_ENABLED: 'true' });
    const apply = await waitFor('the worker span', () =>
      exporter
        .getFinishedSpans()
        .find((s) => s.name === 'tradefleet apply' && s.attributes['tradefleet.partition_key'] === pk),
    );
    expect(apply.spanContext().traceId).toBe(clientTrace);
    expect(apply.parentSpanContext?.spanId).toBe(enqueue!.spanContext().spanId);
    expect(apply.links.map((l) => l.context.spanId)).toEqual([enqueue!.spanContext().spanId]);
    expect(apply.links[0]!.attributes).toMatchObject({
      'tradefleet.trade_id': v.trade.tradeId,
      'tradefleet.seq': head!.seq,
    });
    expect(apply.attributes).toMatchObject({
      'messaging.batch.message_count': 1,
      'tradefleet.first_seq': head!.seq,
    });
    const applied = await dbHandle.db
      .selectFrom('trades')
      .selectAll()
      .where('trade_id', '=', v.trade.tradeId)
      .executeTakeFirst();
    expect(applied?.payload_hash).toBe(payloadHash(v.trade));
  });

  it('off by default: no span and no trace context in the queue entry', async () => {
    exporter.reset();
    const namespace = testNamespace('tracing-off');
    const { app, queue } = producer(namespace, false);
    const t = newTrade(6);
    await post(app, '/v1/trades', t, { traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01` });
    const [head] = await readHead(probe, queue.keys, partitionKey('ACC-6', 'BOOK', 'SEC-6'), 1);
    expect(head!.traceparent).toBeUndefined();
    expect(exporter.getFinishedSpans()).toEqual([]);
  });
});
