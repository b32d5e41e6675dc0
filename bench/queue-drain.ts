/**
 * Queue-core drain benchmark: 20,000 no-op trades over 1,000 partitions,
 * drained by one in-process PartitionConsumer, beside plain BullMQ (one queue,
 * concurrency 50, no ordering) on the same Redis in the same run. Everything
 * is enqueued before the drain starts; the clock runs from worker start to the
 * last ack (tradefleet) or the last 'completed' event (BullMQ).
 *
 *   npm run bench:queue            (writes bench/results/queue-drain.{json,md})
 *   PARTITIONS=20000 npm run bench:queue   (one trade per partition: the worst case,
 *                                          written to bench/results/queue-drain-20000x20000.*)
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import IORedis from 'ioredis';
import { PartitionConsumer, PartitionQueue, type EnqueueItem } from '../src/queue';
import { startRedis } from '../src/dev/local-servers';
import { drainPlainBullmq } from './lib/peers';

const TRADES = Number(process.env.TRADES ?? 20000);
const PARTITIONS = Number(process.env.PARTITIONS ?? 1000);
const REPS = Number(process.env.REPS ?? 3);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 50);
const BATCH = Number(process.env.BATCH ?? 64);
const BUDGET = Number(process.env.BUDGET ?? 512);

function trades(): EnqueueItem[] {
  const out: EnqueueItem[] = [];
  for (let i = 0; i < TRADES; i++) {
    const p = i % PARTITIONS;
    const tradeId = `T${i}`;
    out.push({
      partitionKey: `A${p}_B_S${p}`,
      tradeId,
      payloadHash: 'h',
      body: JSON.stringify({ tradeId, p }),
    });
  }
  return out;
}

async function runTradefleet(redis: IORedis, rep: number): Promise<number> {
  const namespace = `bench-${rep}`;
  const q = new PartitionQueue({ redis, namespace });
  const all = trades();
  for (let i = 0; i < all.length; i += 1000) await q.enqueue(all.slice(i, i + 1000));
  let acked = 0;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  const started = performance.now();
  const c = new PartitionConsumer({
    redis,
    namespace,
    concurrency: CONCURRENCY,
    batchSize: BATCH,
    budget: BUDGET,
    handler: async () => undefined,
    onEvent: (e) => {
      if (e.type === 'acked' && (acked += e.count) === TRADES) resolveDone();
    },
  });
  await done;
  const ms = performance.now() - started;
  await c.close();
  return (TRADES / ms) * 1000;
}

async function runBullmq(redis: IORedis, rep: number): Promise<number> {
  return drainPlainBullmq(redis, `plain-${rep}`, trades());
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main() {
  const server = await startRedis();
  const redis = new IORedis(server.url, { maxRetriesPerRequest: null });
  const results = { tradefleet: [] as number[], bullmq: [] as number[] };
  try {
    for (let rep = 0; rep < REPS; rep++) {
      await redis.flushall();
      results.bullmq.push(await runBullmq(redis, rep));
      await redis.flushall();
      results.tradefleet.push(await runTradefleet(redis, rep));
      console.log(
        `rep ${rep + 1}: tradefleet ${results.tradefleet[rep]!.toFixed(0)}/s, bullmq ${results.bullmq[rep]!.toFixed(0)}/s`,
      );
    }
  } finally {
    await redis.quit();
    await server.stop();
  }
  const name =
    PARTITIONS === 1000 && TRADES === 20000 ? 'queue-drain' : `queue-drain-${TRADES}x${PARTITIONS}`;
  const summary = {
    benchmark: 'queue-drain',
    date: new Date().toISOString(),
    trades: TRADES,
    partitions: PARTITIONS,
    repetitions: REPS,
    tradefleet: {
      concurrency: CONCURRENCY,
      batchSize: BATCH,
      budget: BUDGET,
      perSecond: results.tradefleet.map(Math.round),
    },
    bullmq: { concurrency: 50, perSecond: results.bullmq.map(Math.round) },
    min: {
      tradefleet: Math.round(Math.min(...results.tradefleet)),
      bullmq: Math.round(Math.min(...results.bullmq)),
    },
    median: {
      tradefleet: Math.round(median(results.tradefleet)),
      bullmq: Math.round(median(results.bullmq)),
    },
    ratioOfMedians: +(median(results.tradefleet) / median(results.bullmq)).toFixed(2),
    machine: {
      cpus: cpus().length,
      cpu: cpus()[0]?.model,
      memGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
    },
    versions: {
      bullmq: require('bullmq/package.json').version,
      ioredis: require('ioredis/package.json').version,
      redis: execFileSync('redis-server', ['--version']).toString().trim(),
    },
  };
  const dir = join(__dirname, 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.json`), JSON.stringify(summary, null, 2) + '\n');
  const md = [
    `# Queue-core drain benchmark (${summary.date.slice(0, 10)})`,
    '',
    `${TRADES} no-op trades over ${PARTITIONS} partitions, all enqueued before the drain, one worker process, ${REPS} repetitions. Command: \`npm run bench:queue\`.`,
    '',
    '| system | min trades/s | median trades/s | runs |',
    '| --- | ---: | ---: | --- |',
    `| tradefleet (concurrency ${CONCURRENCY}, batch ${BATCH}, budget ${BUDGET}, ordered per partition) | ${summary.min.tradefleet} | ${summary.median.tradefleet} | ${summary.tradefleet.perSecond.join(', ')} |`,
    `| plain BullMQ (concurrency 50, no ordering) | ${summary.min.bullmq} | ${summary.median.bullmq} | ${summary.bullmq.perSecond.join(', ')} |`,
    '',
    `Ratio of medians: **${summary.ratioOfMedians}x**` +
      (name === 'queue-drain'
        ? ' (target: at least 1.5x).'
        : ' (one trade per partition is the worst case: every trade is a partition turn of its own, a claim and an ack shared with the other partitions of its round trip; no target).'),
    '',
    `Machine: ${summary.machine.cpus} x ${summary.machine.cpu}, ${summary.machine.memGiB} GiB, Node ${summary.machine.node}; bullmq ${summary.versions.bullmq}, ioredis ${summary.versions.ioredis}; ${summary.versions.redis}.`,
    '',
  ].join('\n');
  writeFileSync(join(dir, `${name}.md`), md);
  console.log(md);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
