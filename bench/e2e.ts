/**
 * End-to-end benchmark (issue 8): trades posted in batches to the producer API
 * and applied in PostgreSQL, with default durable settings (Redis AOF
 * everysec, PostgreSQL fsync and synchronous_commit on), beside its peers on
 * the same trades with a no-op processor, in one run. Writes
 * bench/results/e2e.{json,md}.
 *
 *   npm run bench                       (everything, ~15 min on 2 cores)
 *   TRADES=20000 REPS=1 npm run bench   (a quick look)
 *   ONLY=unique,uniform REPS=1 npm run bench
 *                                       (part 1/2 only, the named scenarios; nothing written)
 *   ONLY=latency RATE=3000 npm run bench (part 3 only, at RATE trades/s)
 *   ONLY=scaling npm run bench          (part 5 only)
 *   ONLY=peers npm run bench            (the peers only, to see their spread)
 *   ONLY=latency-sweep npm run bench    (latency at RATES=250,500,...; writes e2e-latency.md)
 *
 * Parts:
 *   1. throughput: 1 producer + 1 worker process, TRADES over 1,000 partitions (uniform)
 *   2. the same with a skewed (Zipf 1.1) distribution, and with one trade per partition
 *   3. latency: enqueue-to-commit p50/p99 while posting at half of part 1's median rate
 *   4. peers: plain BullMQ (one queue, concurrency 50) and GroupMQ (per-group FIFO,
 *      concurrency 50) draining the same trades with a no-op processor
 *   5. scaling: 1, 2 and 4 queue-core worker processes, 5 ms of simulated I/O per batch
 *   6. memory: Redis bytes per queued trade, worker RSS
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import IORedis from 'ioredis';
import { Client } from 'pg';
import { canonicalTradeJson, partitionKey, payloadHash, validateTrade } from '../src/domain';
import { configSchema } from '../src/config/variables';
import { PartitionQueue, readSignals, type EnqueueItem } from '../src/queue';
import { startPostgres, startRedis } from '../src/dev/local-servers';
import {
  buildDist,
  cpuSeconds,
  exited,
  postAll,
  postBatch,
  rssMb,
  sleep,
  startFleet,
  stats,
} from './lib/fleet';
import { drainGroupmq, drainPlainBullmq, type PeerTrade } from './lib/peers';
import { workload, type Distribution } from './lib/workload';

const TRADES = Number(process.env.TRADES ?? 100_000);
const REPS = Number(process.env.REPS ?? 3);
const POSTERS = 4;
const POST_BATCH = 1000;

let redisUrl = '';
let pgAdminUrl = '';
let redis: IORedis;
/** The servers' pids, for CPU accounting (PostgreSQL: the postmaster, whose children are the backends). */
const serverPids = { redis: 0, postgres: 0 };

/** Who spends the CPU of an end-to-end run. */
const CPU_PARTS = ['producer', 'worker', 'redis', 'postgres', 'bench client'] as const;
type CpuPart = (typeof CPU_PARTS)[number];

const fleetOf = (workers: number) => startFleet({ redisUrl, pgAdminUrl, workers });

/** Part 1/2: post everything as fast as POSTERS clients can; time until the last trade is committed. */
async function throughput(trades: Record<string, string>[]): Promise<{
  perSecond: number;
  workerRssMaxMb: number;
  retainedBytesPerTrade: number;
  cpuUsPerTrade: Record<CpuPart, number>;
}> {
  const fleet = await fleetOf(1);
  let rssMax = 0;
  const sampler = setInterval(() => (rssMax = Math.max(rssMax, rssMb(fleet.workers[0]!.pid!))), 250);
  const memoryBefore = await usedMemory();
  const cpu = (): Record<CpuPart, number> => {
    const own = process.cpuUsage();
    return {
      producer: cpuSeconds(fleet.producer.pid!),
      worker: cpuSeconds(fleet.workers[0]!.pid!),
      redis: cpuSeconds(serverPids.redis),
      postgres: cpuSeconds(serverPids.postgres, true),
      'bench client': (own.user + own.system) / 1e6,
    };
  };
  const cpu0 = cpu();
  const started = performance.now();
  await postAll(fleet.api, trades, POSTERS, POST_BATCH);
  while ((await readSignals(redis, fleet.keys)).backlog > 0) await sleep(20);
  const ms = performance.now() - started;
  const cpu1 = cpu();
  clearInterval(sampler);
  await fleet.stop();
  const cpuUsPerTrade = Object.fromEntries(
    CPU_PARTS.map((k) => [k, Math.round(((cpu1[k] - cpu0[k]) * 1e6) / trades.length)]),
  ) as Record<CpuPart, number>;
  // What stays in Redis once every trade is applied: the done markers of the dedup window.
  const retained = (await usedMemory()) - memoryBefore;
  return {
    perSecond: (trades.length / ms) * 1000,
    workerRssMaxMb: Math.round(rssMax),
    retainedBytesPerTrade: Math.round(retained / trades.length),
    cpuUsPerTrade,
  };
}

function cpuText(c: Record<CpuPart, number>): string {
  return CPU_PARTS.map((k) => `${k} ${c[k]}`).join(', ');
}

async function usedMemory(): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
}

/** Part 3: post at `rate` trades/s for `seconds`, then read enqueue-to-commit latencies from PostgreSQL. */
async function latency(
  rate: number,
  seconds: number,
): Promise<{ rate: number; p50: number; p99: number; max: number; trades: number }> {
  const fleet = await fleetOf(1);
  const tickMs = 20;
  const perTick = Math.max(1, Math.round((rate * tickMs) / 1000));
  const post = async (trades: Record<string, string>[]) => {
    const started = performance.now();
    const inflight: Promise<void>[] = [];
    for (let i = 0, tick = 0; i < trades.length; i += perTick, tick++) {
      const due = started + tick * tickMs;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      inflight.push(postBatch(fleet.api, trades.slice(i, i + perTick)));
    }
    await Promise.all(inflight);
    while ((await readSignals(redis, fleet.keys)).backlog > 0) await sleep(20);
  };
  // Warm-up, not measured: the same rate for WARMUP_SECONDS (default 3) over the same
  // partitions, so that the processes are warm and the positions exist (steady state).
  const warmup = Number(process.env.WARMUP_SECONDS ?? 3);
  if (warmup > 0) await post(workload(Math.round(rate * warmup), 1000, 'uniform', 98, 'LW'));
  await post(workload(Math.round(rate * seconds), 1000, 'uniform', 99, 'L'));
  await fleet.stop();
  const db = new Client({ connectionString: fleet.databaseUrl });
  await db.connect();
  // applied_at is the applying transaction's start (now()); enqueued_at the Redis clock at enqueue.
  const rows = (
    await db.query(
      `select extract(epoch from (applied_at - enqueued_at)) * 1000 as ms from trades
        where trade_id not like 'LW%' order by 1`,
    )
  ).rows as { ms: string }[];
  await db.end();
  const ms = rows.map((r) => Number(r.ms));
  const q = (p: number) => +ms[Math.min(ms.length - 1, Math.floor(p * ms.length))]!.toFixed(1);
  return { rate: Math.round(rate), p50: q(0.5), p99: q(0.99), max: q(1), trades: ms.length };
}

function toItems(trades: Record<string, string>[]): EnqueueItem[] {
  return trades.map((raw) => {
    const v = validateTrade(raw);
    if (!v.ok) throw new Error('bad workload');
    return {
      partitionKey: partitionKey(v.trade.accountId, v.trade.bookId, v.trade.securityId),
      tradeId: v.trade.tradeId,
      payloadHash: payloadHash(v.trade),
      body: canonicalTradeJson(v.trade),
    };
  });
}

/**
 * Part 5: queue-core workers with 5 ms of simulated I/O per batch; trades/s for
 * n processes. The queue is filled first and the workers all start on one
 * signal, so the clock measures draining only (not enqueueing, not start-up).
 */
async function scaling(n: number, items: EnqueueItem[]): Promise<number> {
  const namespace = `scale-${process.pid}-${n}-${Date.now()}`;
  const q = new PartitionQueue({ redis, namespace });
  for (let i = 0; i < items.length; i += 1000) await q.enqueue(items.slice(i, i + 1000));
  const procs = Array.from({ length: n }, () =>
    spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'workers', 'sleepy-worker.ts')], {
      env: {
        ...process.env,
        REDIS_URL: redisUrl,
        NAMESPACE: namespace,
        CONCURRENCY: '1',
        BATCH_SIZE: '16',
        WORK_MS: '5',
      },
      stdio: ['pipe', 'pipe', 'inherit'],
    }),
  );
  await Promise.all(procs.map((p) => new Promise<void>((r) => p.stdout!.once('data', () => r()))));
  const started = performance.now();
  for (const p of procs) p.stdin!.write('go\n');
  while ((await readSignals(redis, q.keys)).backlog > 0) await sleep(10);
  const ms = performance.now() - started;
  for (const p of procs) p.kill('SIGTERM');
  await Promise.all(procs.map(exited));
  return (items.length / ms) * 1000;
}

/** Part 6: Redis bytes per queued trade (INFO memory before/after enqueueing, no workers). */
async function redisBytesPerTrade(
  items: EnqueueItem[],
): Promise<{ bytesPerTrade: number; bodyBytes: number }> {
  const used = usedMemory;
  const q = new PartitionQueue({ redis, namespace: `mem-${process.pid}` });
  const before = await used();
  for (let i = 0; i < items.length; i += 1000) await q.enqueue(items.slice(i, i + 1000));
  const after = await used();
  const bodyBytes = Math.round(items.reduce((a, it) => a + it.body.length, 0) / items.length);
  return { bytesPerTrade: Math.round((after - before) / items.length), bodyBytes };
}

async function main() {
  buildDist();
  const redisServer = await startRedis({ appendonly: true, appendfsync: 'everysec' });
  const pg = await startPostgres({ durable: true });
  redisUrl = redisServer.url;
  pgAdminUrl = pg.url;
  serverPids.redis = redisServer.pid;
  serverPids.postgres = pg.pid;
  redis = new IORedis(redisUrl, { maxRetriesPerRequest: null });
  const log = (s: string) => console.log(`[bench] ${s}`);
  try {
    const scenarios: { name: string; partitions: number; distribution: Distribution }[] = [
      { name: 'uniform, 1,000 partitions', partitions: 1000, distribution: 'uniform' },
      { name: 'skewed (Zipf 1.1), 1,000 partitions', partitions: 1000, distribution: 'zipf' },
      {
        name: `one trade per partition (${TRADES.toLocaleString('en')} partitions)`,
        partitions: TRADES,
        distribution: 'unique',
      },
    ];
    const only = process.env.ONLY?.split(',');
    if (only?.includes('scaling')) {
      const items = toItems(workload(Math.min(TRADES, 40_000), 1000, 'uniform', 5, 'W'));
      for (const n of [1, 2, 4]) {
        log(`scaling ${n}: ${Math.round(await scaling(n, items))}/s`);
        await redis.flushdb();
      }
    }
    if (only?.includes('peers')) {
      // The peers alone (their run-to-run spread), on the same Redis settings.
      const items = toItems(workload(TRADES, 1000, 'uniform', 7, 'P'));
      for (let rep = 0; rep < REPS; rep++) {
        await redis.flushdb();
        const b = await drainPlainBullmq(redis, `plain-${rep}`, items);
        await redis.flushdb();
        const g = await drainGroupmq(redis, `gmq${rep}`, items);
        log(`peers rep ${rep + 1}: plain BullMQ ${Math.round(b)}/s, GroupMQ ${Math.round(g)}/s`);
      }
    }
    if (only?.includes('latency-sweep')) {
      // Where the latency knee is: enqueue-to-commit latency at several posting rates.
      const rates = (process.env.RATES ?? '250,500,1000,2000,4000').split(',').map(Number);
      const seconds = Number(process.env.LATENCY_SECONDS ?? 10);
      const rows = [];
      for (const rate of rates) {
        const lat = await latency(rate, seconds);
        log(`latency at ${lat.rate}/s: p50 ${lat.p50} ms, p99 ${lat.p99} ms, max ${lat.max} ms`);
        rows.push(lat);
      }
      const dir = join(__dirname, 'results');
      writeFileSync(
        join(dir, 'e2e-latency.json'),
        JSON.stringify({ date: new Date().toISOString(), seconds, partitions: 1000, rows }, null, 2) + '\n',
      );
      writeFileSync(
        join(dir, 'e2e-latency.md'),
        [
          `# Latency against posting rate (${new Date().toISOString().slice(0, 10)})`,
          '',
          `Command: \`ONLY=latency-sweep npm run bench\`. NEW trades over 1,000 partitions (uniform) posted to the producer API every 20 ms for ${seconds} s at each rate, after a warm-up of 3 s at the same rate (not measured: processes warm, positions created), 1 producer and 1 worker process, durable settings as in e2e.md; latency is enqueue (Redis clock) to the start of the transaction that applied the trade (\`applied_at\`, PostgreSQL \`now()\`); the commit (one fsync) follows within milliseconds.`,
          '',
          '| posted trades/s | p50 ms | p99 ms | max ms | trades |',
          '| ---: | ---: | ---: | ---: | ---: |',
          ...rows.map((r) => `| ${r.rate} | ${r.p50} | ${r.p99} | ${r.max} | ${r.trades} |`),
          '',
        ].join('\n'),
      );
      return;
    }
    if (only?.includes('latency')) {
      const lat = await latency(Number(process.env.RATE ?? 3000), Number(process.env.LATENCY_SECONDS ?? 15));
      log(`latency at ${lat.rate}/s: p50 ${lat.p50} ms, p99 ${lat.p99} ms, max ${lat.max} ms`);
    }
    if (only) {
      for (const sc of scenarios.filter((x) => only.some((o) => x.distribution === o))) {
        for (let rep = 0; rep < REPS; rep++) {
          const r = await throughput(workload(TRADES, sc.partitions, sc.distribution, rep + 1, `E${rep}`));
          log(`${sc.name}: ${Math.round(r.perSecond)} trades/s (worker RSS max ${r.workerRssMaxMb} MB)`);
          log(`  CPU us per trade: ${cpuText(r.cpuUsPerTrade)}`);
        }
      }
      return;
    }
    const e2e: Record<
      string,
      {
        perSecond: ReturnType<typeof stats>;
        runs: number[];
        workerRssMaxMb: number;
        redisRetainedBytesPerAppliedTrade: number;
        /** Median over the repetitions, per process: microseconds of CPU per trade. */
        cpuUsPerTrade: Record<CpuPart, number>;
      }
    > = {};
    for (const sc of scenarios) {
      const runs: number[] = [];
      const retained: number[] = [];
      const cpuRuns: Record<CpuPart, number>[] = [];
      let rss = 0;
      for (let rep = 0; rep < REPS; rep++) {
        const r = await throughput(workload(TRADES, sc.partitions, sc.distribution, rep + 1, `E${rep}`));
        runs.push(r.perSecond);
        retained.push(r.retainedBytesPerTrade);
        cpuRuns.push(r.cpuUsPerTrade);
        rss = Math.max(rss, r.workerRssMaxMb);
        log(`${sc.name}: ${Math.round(r.perSecond)} trades/s (worker RSS max ${r.workerRssMaxMb} MB)`);
        log(`  CPU us per trade: ${cpuText(r.cpuUsPerTrade)}`);
      }
      e2e[sc.name] = {
        perSecond: stats(runs),
        runs: runs.map(Math.round),
        workerRssMaxMb: rss,
        redisRetainedBytesPerAppliedTrade: stats(retained).median,
        cpuUsPerTrade: Object.fromEntries(
          CPU_PARTS.map((k) => [k, stats(cpuRuns.map((c) => c[k])).median]),
        ) as Record<CpuPart, number>,
      };
    }
    const maxRate = e2e[scenarios[0]!.name]!.perSecond.median;
    const lat = await latency(maxRate / 2, Number(process.env.LATENCY_SECONDS ?? 15));
    log(`latency at ${lat.rate}/s: p50 ${lat.p50} ms, p99 ${lat.p99} ms`);

    const peerTrades: PeerTrade[] = toItems(workload(TRADES, 1000, 'uniform', 7, 'P'));
    const bull: number[] = [];
    const group: number[] = [];
    for (let rep = 0; rep < REPS; rep++) {
      bull.push(await drainPlainBullmq(redis, `plain-${rep}`, peerTrades));
      group.push(await drainGroupmq(redis, `gmq${rep}`, peerTrades));
      log(
        `peers rep ${rep + 1}: plain BullMQ ${Math.round(bull[rep]!)}/s, GroupMQ ${Math.round(group[rep]!)}/s`,
      );
      await redis.flushdb();
    }

    const scaleItems = toItems(workload(Math.min(TRADES, 40_000), 1000, 'uniform', 5, 'W'));
    const scale: Record<number, number[]> = { 1: [], 2: [], 4: [] };
    for (let rep = 0; rep < REPS; rep++) {
      for (const n of [1, 2, 4]) {
        scale[n]!.push(await scaling(n, scaleItems));
        await redis.flushdb();
      }
      log(
        `scaling rep ${rep + 1}: ${[1, 2, 4].map((n) => `${n}: ${Math.round(scale[n]![rep]!)}/s`).join(', ')}`,
      );
    }
    const mem = await redisBytesPerTrade(toItems(workload(TRADES, 1000, 'uniform', 11, 'M')));
    log(`Redis: ${mem.bytesPerTrade} bytes per queued trade (body ${mem.bodyBytes} bytes)`);

    const bullMedian = stats(bull).median;
    const scaleMedian = Object.fromEntries([1, 2, 4].map((n) => [n, stats(scale[n]!).median]));
    const result = {
      benchmark: 'e2e',
      date: new Date().toISOString(),
      trades: TRADES,
      repetitions: REPS,
      settings: {
        redis: 'AOF appendfsync everysec',
        postgres: 'fsync on, synchronous_commit on, full_page_writes on',
        producer: `${POSTERS} concurrent clients posting batches of ${POST_BATCH}`,
        worker: `defaults: ${(['WORKER_CONCURRENCY', 'WORKER_BATCH_SIZE', 'WORKER_BUDGET', 'PG_POOL_SIZE', 'LOG_LEVEL'] as const).map((k) => `${k} ${String(configSchema[k].default)}`).join(', ')}`,
      },
      e2e,
      latencyAtHalfLoad: lat,
      peers: {
        plainBullmq: { perSecond: stats(bull), runs: bull.map(Math.round) },
        groupmq: { perSecond: stats(group), runs: group.map(Math.round) },
      },
      ratios: {
        uniformVsPlainBullmq: +(maxRate / bullMedian).toFixed(2),
        onePerPartitionVsPlainBullmq: +(e2e[scenarios[2]!.name]!.perSecond.median / bullMedian).toFixed(2),
      },
      scaling: {
        setup:
          '40,000 trades over 1,000 partitions; queue-core workers, concurrency 1, batch 16, 5 ms simulated I/O per batch',
        perSecond: scaleMedian,
        efficiency: {
          2: +(scaleMedian[2]! / (2 * scaleMedian[1]!)).toFixed(2),
          4: +(scaleMedian[4]! / (4 * scaleMedian[1]!)).toFixed(2),
        },
      },
      memory: {
        redisBytesPerQueuedTrade: mem.bytesPerTrade,
        tradeBodyBytes: mem.bodyBytes,
        workerRssMaxMb: Math.max(...Object.values(e2e).map((x) => x.workerRssMaxMb)),
      },
      machine: {
        cpus: cpus().length,
        cpu: cpus()[0]?.model,
        memGiB: Math.round(totalmem() / 2 ** 30),
        node: process.version,
      },
      versions: {
        bullmq: require('bullmq/package.json').version,
        groupmq: require('groupmq/package.json').version,
        ioredis: require('ioredis/package.json').version,
        pg: require('pg/package.json').version,
      },
    };
    const dir = join(__dirname, 'results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'e2e.json'), JSON.stringify(result, null, 2) + '\n');
    const row = (name: string, s: { min: number; median: number; max: number }, runs: number[]) =>
      `| ${name} | ${s.min} | ${s.median} | ${s.max} | ${runs.join(', ')} |`;
    const md = [
      `# End-to-end benchmark (${result.date.slice(0, 10)})`,
      '',
      `Command: \`npm run bench\`. ${TRADES.toLocaleString('en')} trades per run, ${REPS} repetitions, one machine (${result.machine.cpus} x ${result.machine.cpu}, Node ${result.machine.node}). Durable settings: Redis ${result.settings.redis}; PostgreSQL ${result.settings.postgres}. ${result.settings.producer}; 1 producer and 1 worker process (${result.settings.worker}). Trades are NEW trades posted to the producer API; the clock runs until the last one is committed.`,
      '',
      '| end to end (posted -> committed) | min trades/s | median | max | runs |',
      '| --- | ---: | ---: | ---: | --- |',
      ...Object.entries(e2e).map(([k, v]) => row(k, v.perSecond, v.runs)),
      '',
      '| peers, no-op processor, same trades (1,000 partitions) | min | median | max | runs |',
      '| --- | ---: | ---: | ---: | --- |',
      row(
        'plain BullMQ (one queue, concurrency 50, no ordering)',
        result.peers.plainBullmq.perSecond,
        result.peers.plainBullmq.runs,
      ),
      row(
        'GroupMQ (per-group FIFO, concurrency 50)',
        result.peers.groupmq.perSecond,
        result.peers.groupmq.runs,
      ),
      '',
      '| CPU per trade, microseconds (median of the runs) | ' +
        CPU_PARTS.join(' | ') +
        ' | total | 2 cores allow |',
      '| --- |' + ' ---: |'.repeat(CPU_PARTS.length + 2),
      ...Object.entries(e2e).map(([k, v]) => {
        const total = CPU_PARTS.reduce((a, p) => a + v.cpuUsPerTrade[p], 0);
        return `| ${k} | ${CPU_PARTS.map((p) => v.cpuUsPerTrade[p]).join(' | ')} | ${total} | ${Math.round(2e6 / total)}/s |`;
      }),
      '',
      'CPU is user + system time from /proc over each run (posting included), per trade; PostgreSQL counts every backend and helper process; "bench client" is the process posting the trades. With every process on the same 2 cores, their sum bounds the throughput.',
      '',
      `Ratios (medians): end to end uniform / plain BullMQ no-op = **${result.ratios.uniformVsPlainBullmq}x** (target 2x); one trade per partition / plain BullMQ = **${result.ratios.onePerPartitionVsPlainBullmq}x** (target 0.5x).`,
      '',
      `Latency, enqueue to the applying transaction (\`applied_at\`; its commit follows within milliseconds), posting at ${lat.rate} trades/s (half the uniform median) for ${Number(process.env.LATENCY_SECONDS ?? 15)} s after a 3 s warm-up at the same rate (not measured): p50 **${lat.p50} ms**, p99 **${lat.p99} ms**, max ${lat.max} ms over ${lat.trades} trades (target p99 < 50 ms).`,
      '',
      `Scaling (${result.scaling.setup}): 1 worker ${scaleMedian[1]}/s, 2 workers ${scaleMedian[2]}/s (efficiency ${result.scaling.efficiency[2]}), 4 workers ${scaleMedian[4]}/s (efficiency ${result.scaling.efficiency[4]}); target 0.9.`,
      '',
      `Memory: Redis ${mem.bytesPerTrade} bytes per queued trade (trade body ${mem.bodyBytes} bytes); once applied, a trade keeps ${e2e[scenarios[0]!.name]!.redisRetainedBytesPerAppliedTrade} bytes in Redis (its done marker, for DEDUP_WINDOW_SECONDS, default ${String(configSchema.DEDUP_WINDOW_SECONDS.default)} s); worker RSS max ${result.memory.workerRssMaxMb} MB (target < 200 MB).`,
      '',
      `Versions: bullmq ${result.versions.bullmq}, groupmq ${result.versions.groupmq}, ioredis ${result.versions.ioredis}, pg ${result.versions.pg}.`,
      '',
    ].join('\n');
    writeFileSync(join(dir, 'e2e.md'), md);
    console.log(md);
  } finally {
    redis.disconnect();
    await redisServer.stop();
    await pg.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
