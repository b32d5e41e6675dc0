/**
 * Where the time goes (issue 8): one scenario of the end-to-end benchmark in
 * two timed phases, enqueue (producer only) then drain (one worker), with
 * - node --cpu-prof of the producer and of the worker (top functions by self time),
 * - Redis INFO commandstats (calls and microseconds per command or script),
 * - pg_stat_statements (statements by total time).
 *
 *   npx tsx bench/profile.ts                 (uniform: 20,000 trades over 1,000 partitions)
 *   SCENARIO=unique TRADES=20000 npx tsx bench/profile.ts
 *   PG_SETTINGS=shared_buffers=2GB,wal_buffers=64MB npx tsx bench/profile.ts
 *
 * Profiles are left in a temporary directory (printed) for Chrome DevTools.
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import IORedis from 'ioredis';
import { Client } from 'pg';
import { createHash } from 'node:crypto';
import { readSignals } from '../src/queue';
import { readScripts } from '../src/queue/scripts';
import { startPostgres, startRedis } from '../src/dev/local-servers';
import { buildDist, cpuSeconds, exited, postAll, sleep, startFleet } from './lib/fleet';
import { workload, type Distribution } from './lib/workload';

const TRADES = Number(process.env.TRADES ?? 20_000);
const SCENARIO = (process.env.SCENARIO ?? 'uniform') as Distribution;
const PARTITIONS = SCENARIO === 'unique' ? TRADES : Number(process.env.PARTITIONS ?? 1000);

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

/** Top `n` functions by self time in a .cpuprofile, as percentages of the samples. */
function topFunctions(file: string, n = Number(process.env.TOP ?? 25)): string[] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[] };
  const self = new Map<string, number>();
  let total = 0;
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    total += hits;
    const f = node.callFrame;
    const where = f.url.replace(/^.*\/node_modules\//, '~/').replace(/^.*\/(src|bench)\//, '$1/');
    const key = `${f.functionName || '(anonymous)'} ${where}:${f.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + hits);
  }
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `${((v / total) * 100).toFixed(1).padStart(5)}%  ${k}`);
}

/** By package (node_modules/<pkg>, src/<dir>, node internals, GC/idle). */
function byPackage(file: string): string[] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[] };
  const sums = new Map<string, number>();
  let total = 0;
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    total += hits;
    const url = node.callFrame.url;
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url) ?? /\/(src\/[^/]+)\//.exec(url);
    const key = m
      ? m[1]!
      : url.startsWith('node:')
        ? 'node internals'
        : node.callFrame.functionName || '(native)';
    sums.set(key, (sums.get(key) ?? 0) + hits);
  }
  return [...sums.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 15)
    .map(([k, v]) => `${((v / total) * 100).toFixed(1).padStart(5)}%  ${k}`);
}

function commandStats(info: string): Map<string, { calls: number; usec: number }> {
  const out = new Map<string, { calls: number; usec: number }>();
  for (const line of info.split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line);
    if (m) out.set(m[1]!, { calls: Number(m[2]), usec: Number(m[3]) });
  }
  return out;
}

function statsDiff(before: string, after: string, trades: number): string[] {
  const a = commandStats(before);
  return [...commandStats(after).entries()]
    .map(([cmd, s]) => {
      const b = a.get(cmd) ?? { calls: 0, usec: 0 };
      return { cmd, calls: s.calls - b.calls, usec: s.usec - b.usec };
    })
    .filter((x) => x.calls > 0)
    .sort((x, y) => y.usec - x.usec)
    .slice(0, 15)
    .map(
      (x) =>
        `${x.cmd.padEnd(16)} calls ${String(x.calls).padStart(8)}  per trade ${(x.calls / trades).toFixed(2).padStart(6)}  ` +
        `${(x.usec / x.calls).toFixed(1).padStart(7)} us/call  total ${(x.usec / 1000).toFixed(0)} ms`,
    );
}

/**
 * Redis time per script during a phase, from SLOWLOG with a threshold of 0
 * (every command logged): our scripts by name (sha1 of their source), BullMQ's
 * by the suffix of their first key.
 */
async function scriptTimes(redis: IORedis, trades: number): Promise<string[]> {
  const ours = new Map(
    readScripts().map((f) => [createHash('sha1').update(f.lua).digest('hex'), `tf ${f.name}`]),
  );
  const entries = (await redis.call('SLOWLOG', 'GET', '-1')) as [number, number, number, string[]][];
  const sums = new Map<string, { calls: number; usec: number }>();
  for (const [, , usec, args] of entries) {
    const cmd = String(args[0]).toLowerCase();
    let name = cmd;
    if (cmd === 'evalsha' || cmd === 'eval') {
      const sha = String(args[1]);
      name = ours.get(sha) ?? `bullmq ${String(args[3] ?? '').replace(/^.*:/, '')}/${args[2]} keys`;
    }
    const s = sums.get(name) ?? { calls: 0, usec: 0 };
    s.calls++;
    s.usec += usec;
    sums.set(name, s);
  }
  return [...sums.entries()]
    .sort((a, b) => b[1].usec - a[1].usec)
    .slice(0, 12)
    .map(
      ([k, v]) =>
        `${k.padEnd(28)} calls ${String(v.calls).padStart(7)}  ${(v.usec / v.calls).toFixed(1).padStart(6)} us/call  ` +
        `${(v.usec / trades).toFixed(1).padStart(6)} us per trade`,
    );
}

async function main() {
  buildDist();
  const redisServer = await startRedis({ appendonly: true, appendfsync: 'everysec' });
  const pg = await startPostgres({
    durable: true,
    settings: {
      shared_preload_libraries: 'pg_stat_statements',
      'pg_stat_statements.track': 'all',
      // PG_SETTINGS="wal_buffers=64MB,max_wal_size=8GB": server tuning to compare against the defaults.
      ...Object.fromEntries(
        (process.env.PG_SETTINGS ?? '')
          .split(',')
          .filter(Boolean)
          .map((kv) => kv.split('=') as [string, string]),
      ),
    },
  });
  const redis = new IORedis(redisServer.url, { maxRetriesPerRequest: null });
  const profDir = mkdtempSync(join(tmpdir(), 'tradefleet-prof-'));
  const prof = (name: string) => ['--cpu-prof', '--cpu-prof-dir', join(profDir, name)];
  try {
    const fleet = await startFleet({
      redisUrl: redisServer.url,
      pgAdminUrl: pg.url,
      workers: 0,
      nodeArgs: prof('producer'),
    });
    const db = new Client({ connectionString: fleet.databaseUrl });
    await db.connect();
    await db.query('create extension if not exists pg_stat_statements');
    const trades = workload(TRADES, PARTITIONS, SCENARIO, 1, 'F');

    const info0 = await redis.info('commandstats');
    const enqCpu = () => ({
      producer: cpuSeconds(fleet.producer.pid!),
      redis: cpuSeconds(redisServer.pid),
      'bench client': process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6,
    });
    await redis.config('SET', 'slowlog-max-len', '1000000');
    await redis.config('SET', 'slowlog-log-slower-than', '0');
    await redis.slowlog('RESET');
    const e0 = enqCpu();
    let t = performance.now();
    await postAll(fleet.api, trades, 4, 1000);
    const enqueueMs = performance.now() - t;
    const e1 = enqCpu();
    const info1 = await redis.info('commandstats');
    const enqueueScripts = await scriptTimes(redis, TRADES);
    await redis.slowlog('RESET');
    const cpu = () => ({
      redis: cpuSeconds(redisServer.pid),
      postgres: cpuSeconds(pg.pid, true),
      worker: fleet.workers[0] ? cpuSeconds(fleet.workers[0].pid!) : 0,
    });

    await db.query('select pg_stat_statements_reset()');
    const worker = fleet.addWorker(prof('worker'));
    // Started (connected, scripts loaded) before the clock starts: wait for its first ack.
    const backlog0 = (await readSignals(redis, fleet.keys)).backlog;
    while ((await readSignals(redis, fleet.keys)).backlog === backlog0) {
      if (worker.exitCode !== null)
        throw new Error(`the worker exited (${worker.exitCode}): ${worker.err()}`);
      await sleep(5);
    }
    const cpu0 = cpu();
    const left0 = (await readSignals(redis, fleet.keys)).backlog;
    t = performance.now();
    while ((await readSignals(redis, fleet.keys)).backlog > 0) await sleep(20);
    const drainMs = performance.now() - t;
    const cpu1 = cpu();
    const info2 = await redis.info('commandstats');
    const drainScripts = await scriptTimes(redis, TRADES);
    await redis.config('SET', 'slowlog-log-slower-than', '10000');
    const statements = await db.query<{
      calls: string;
      total: string;
      mean: string;
      rows: string;
      query: string;
    }>(
      `select calls, round(total_exec_time::numeric, 1) as total, round(mean_exec_time::numeric, 3) as mean, rows,
              left(regexp_replace(query, '\\s+', ' ', 'g'), 110) as query
         from pg_stat_statements where dbid = (select oid from pg_database where datname = current_database())
        order by total_exec_time desc limit 12`,
    );
    await db.end();
    await fleet.stop();
    await Promise.all([fleet.producer, ...fleet.workers].map(exited));

    const rate = (ms: number) => Math.round((TRADES / ms) * 1000);
    console.log(`\n${TRADES} trades, ${SCENARIO}, ${PARTITIONS} partitions`);
    console.log(
      `enqueue (4 clients x 1,000-trade batches, no worker): ${Math.round(enqueueMs)} ms = ${rate(enqueueMs)}/s`,
    );
    for (const who of ['producer', 'redis', 'bench client'] as const) {
      const sec = e1[who] - e0[who];
      console.log(
        `  CPU ${who.padEnd(12)} ${sec.toFixed(2)} s = ${((sec / (enqueueMs / 1000)) * 100).toFixed(0)}% of a core, ${((sec / TRADES) * 1e6).toFixed(0)} us per trade`,
      );
    }
    console.log(
      `drain (1 worker, timed from its first ack): ${left0} trades in ${Math.round(drainMs)} ms = ${Math.round((left0 / drainMs) * 1000)}/s`,
    );
    for (const who of ['worker', 'redis', 'postgres'] as const) {
      const sec = cpu1[who] - cpu0[who];
      console.log(
        `  CPU ${who.padEnd(8)} ${sec.toFixed(2)} s = ${((sec / (drainMs / 1000)) * 100).toFixed(0)}% of a core, ${((sec / left0) * 1e6).toFixed(0)} us per trade`,
      );
    }
    console.log('\nRedis during enqueue:');
    for (const l of statsDiff(info0, info1, TRADES)) console.log(`  ${l}`);
    console.log('Redis during drain:');
    for (const l of statsDiff(info1, info2, TRADES)) console.log(`  ${l}`);
    console.log('Redis scripts during enqueue (SLOWLOG):');
    for (const l of enqueueScripts) console.log(`  ${l}`);
    console.log('Redis scripts during drain (SLOWLOG, includes the worker start):');
    for (const l of drainScripts) console.log(`  ${l}`);
    console.log('\nPostgreSQL during drain (pg_stat_statements, ms):');
    for (const r of statements.rows)
      console.log(
        `  ${r.calls.padStart(7)} calls ${r.total.padStart(9)} total ${r.mean.padStart(7)} mean  ${r.query}`,
      );
    for (const who of ['producer', 'worker']) {
      const dir = join(profDir, who);
      const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
      for (const f of files) {
        console.log(`\n${who} CPU by package (${join(dir, f)}):`);
        for (const l of byPackage(join(dir, f))) console.log(`  ${l}`);
        console.log(`${who} top functions by self time:`);
        for (const l of topFunctions(join(dir, f))) console.log(`  ${l}`);
      }
    }
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
