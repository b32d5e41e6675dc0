/**
 * A queue-core worker process for the scaling benchmark: drains a namespace
 * and spends WORK_MS (simulated I/O, a timer, no CPU) per batch. Prints
 * "ready" once connected and starts draining when it reads "go" on stdin, so
 * that every worker of a run starts at once; SIGTERM drains and exits.
 * Environment: REDIS_URL, NAMESPACE, CONCURRENCY, BATCH_SIZE, WORK_MS.
 */
import IORedis from 'ioredis';
import { PartitionConsumer } from '../../src/queue';

const env = process.env;
const redis = new IORedis(env.REDIS_URL!, { maxRetriesPerRequest: null });
const workMs = Number(env.WORK_MS ?? 5);
const consumer = new PartitionConsumer({
  redis,
  namespace: env.NAMESPACE!,
  concurrency: Number(env.CONCURRENCY ?? 1),
  batchSize: Number(env.BATCH_SIZE ?? 16),
  budget: 512,
  handler: () => new Promise((r) => setTimeout(r, workMs)),
  autorun: false,
});
void consumer.waitUntilReady().then(() => console.log('ready'));
process.stdin.on('data', (d: Buffer) => {
  if (d.toString().includes('go')) void consumer.run();
});
process.on('SIGTERM', () => {
  void consumer.close().then(async () => {
    await redis.quit();
    process.exit(0);
  });
});
