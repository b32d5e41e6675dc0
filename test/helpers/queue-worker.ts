/**
 * A worker process for the queue-core tests: drains a namespace with a
 * PartitionConsumer and appends one JSON line per event to LOG_FILE, so that a
 * test can check order, exclusivity and exactly-once acks across processes.
 *
 * Environment: REDIS_URL, NAMESPACE, LOG_FILE, CONCURRENCY, BATCH_SIZE, BUDGET,
 * LOCK_MS, STALL_MS, SLOW_PK (a partition whose batches take SLOW_MS each),
 * WORK_MS (time spent per batch on every partition).
 *
 * Lines: {ev:'start'|'end', pid, pk, seqs, t} around every handler call (t in
 * microseconds since the epoch), {ev:'acked', pid, pk, first, last, epoch},
 * {ev:'lease-lost', pid, pk, why}, {ev:'ready', pid}.
 */
import { appendFileSync } from 'node:fs';
import IORedis from 'ioredis';
import { PartitionConsumer } from '../../src/queue';

const env = process.env;
const logFile = env.LOG_FILE!;
const now = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
const log = (o: object) => appendFileSync(logFile, JSON.stringify({ pid: process.pid, ...o }) + '\n');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const redis = new IORedis(env.REDIS_URL!, { maxRetriesPerRequest: null });
const slowPk = env.SLOW_PK;
const slowMs = Number(env.SLOW_MS ?? 0);
const workMs = Number(env.WORK_MS ?? 0);

const consumer = new PartitionConsumer({
  redis,
  namespace: env.NAMESPACE!,
  concurrency: Number(env.CONCURRENCY ?? 8),
  batchSize: Number(env.BATCH_SIZE ?? 16),
  budget: Number(env.BUDGET ?? 64),
  lockDurationMs: Number(env.LOCK_MS ?? 2000),
  stalledIntervalMs: Number(env.STALL_MS ?? 1000),
  retry: { baseMs: 50, maxMs: 500 },
  handler: async (batch) => {
    const seqs = batch.items.map((i) => i.seq);
    log({ ev: 'start', pk: batch.partitionKey, seqs, epoch: batch.epoch, t: now() });
    if (slowPk && batch.partitionKey === slowPk) await sleep(slowMs);
    else if (workMs > 0) await sleep(workMs);
    log({ ev: 'end', pk: batch.partitionKey, seqs, t: now() });
  },
  onEvent: (e) => {
    if (e.type === 'acked')
      log({ ev: 'acked', pk: e.partitionKey, first: e.firstSeq, last: e.lastSeq, epoch: e.epoch, t: now() });
    else if (e.type === 'lease-lost') log({ ev: 'lease-lost', pk: e.partitionKey, why: e.why, t: now() });
  },
});

consumer.waitUntilReady().then(() => log({ ev: 'ready' }));

let stopping = false;
const stop = async () => {
  if (stopping) process.exit(1);
  stopping = true;
  await consumer.close();
  await redis.quit();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
