/**
 * The peers tradefleet is measured against, on the same Redis in the same run,
 * each draining the same trades with a no-op processor.
 */
import { Queue, Worker } from 'bullmq';
import IORedis from 'ioredis';

export interface PeerTrade {
  partitionKey: string;
  tradeId: string;
  body: string;
}

/** Plain BullMQ: one queue, concurrency 50, no ordering. Returns trades/s of the drain. */
export async function drainPlainBullmq(
  redis: IORedis,
  name: string,
  trades: readonly PeerTrade[],
): Promise<number> {
  const queue = new Queue(name, { connection: redis });
  for (let i = 0; i < trades.length; i += 1000) {
    await queue.addBulk(
      trades.slice(i, i + 1000).map((t) => ({ name: 'trade', data: t, opts: { removeOnComplete: true } })),
    );
  }
  let completed = 0;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  const started = performance.now();
  const worker = new Worker(name, async () => undefined, { connection: redis, concurrency: 50 });
  worker.on('completed', () => {
    if (++completed === trades.length) resolveDone();
  });
  await done;
  const ms = performance.now() - started;
  await worker.close();
  await queue.close();
  return (trades.length / ms) * 1000;
}

/** GroupMQ: per-group FIFO (group = partition), concurrency 50. Returns trades/s of the drain. */
export async function drainGroupmq(
  redis: IORedis,
  namespace: string,
  trades: readonly PeerTrade[],
): Promise<number> {
  const { Queue: GQueue, Worker: GWorker } = require('groupmq') as typeof import('groupmq');
  // GroupMQ closes the connection it is given: give it its own.
  const own = redis.duplicate();
  const queue = new GQueue({ redis: own, namespace, keepCompleted: 0, logger: false });
  const base = Date.now();
  for (let i = 0; i < trades.length; i += 500) {
    await Promise.all(
      trades
        .slice(i, i + 500)
        .map((t, j) => queue.add({ groupId: t.partitionKey, data: t, orderMs: base + i + j })),
    );
  }
  let completed = 0;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  const started = performance.now();
  const worker = new GWorker({
    queue,
    concurrency: 50,
    handler: async () => {
      if (++completed === trades.length) resolveDone();
    },
  });
  void worker.run();
  await done;
  const ms = performance.now() - started;
  await worker.close(1000);
  await queue.close();
  own.disconnect();
  return (trades.length / ms) * 1000;
}
