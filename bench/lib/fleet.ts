/**
 * A tradefleet under benchmark: producer and worker processes started through
 * the CLI against one Redis and a fresh PostgreSQL database, and the HTTP
 * client that posts to it. Shared by bench/e2e.ts and bench/profile.ts.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { QueueKeys } from '../../src/queue';
import { freePort } from '../../src/dev/local-servers';

const ROOT = join(__dirname, '..', '..');
/** What the container image runs (Dockerfile ENTRYPOINT): the compiled dist/, not the sources through tsx. */
const ENTRY = join(ROOT, 'dist', 'cli.js');

/** Compiles dist/ (`npm run build`), so that the benchmark measures the code an image runs. */
export function buildDist(): void {
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'inherit' });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** min / median / max, rounded. */
export const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return {
    min: Math.round(s[0]!),
    median: Math.round(s[Math.floor(s.length / 2)]!),
    max: Math.round(s[s.length - 1]!),
  };
};

export type BenchChild = ChildProcess & { err: () => string };

let logFiles = 0;

/**
 * `tradefleet <args>` from dist/ (see buildDist) with `nodeArgs` (e.g. --cpu-prof);
 * stderr kept (last 4 kB) for error messages.
 */
export function cli(args: string[], env: Record<string, string>, nodeArgs: string[] = []): BenchChild {
  // BENCH_LOG_DIR=dir keeps each process's stdout (its log lines) in dir/<command>-<n>.log.
  const logDir = process.env.BENCH_LOG_DIR;
  const out = logDir ? openSync(join(logDir, `${args[0]}-${++logFiles}.log`), 'a') : 'ignore';
  const child = spawn(process.execPath, [...nodeArgs, ENTRY, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', out, 'pipe'],
  }) as BenchChild;
  if (typeof out === 'number') closeSync(out);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  child.err = () => err;
  return child;
}

export const exited = (c: ChildProcess) =>
  c.exitCode !== null || c.signalCode !== null
    ? Promise.resolve()
    : new Promise<void>((r) => c.once('exit', () => r()));

export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

export interface Fleet {
  api: string;
  keys: QueueKeys;
  databaseUrl: string;
  env: Record<string, string>;
  producer: BenchChild;
  workers: BenchChild[];
  /** Starts one more worker process. */
  addWorker(nodeArgs?: string[]): BenchChild;
  stop(): Promise<void>;
}

export interface FleetOptions {
  redisUrl: string;
  /** `postgres://.../postgres` of a server where databases may be created. */
  pgAdminUrl: string;
  workers: number;
  /** Node flags of the producer and worker processes. @default none */
  nodeArgs?: string[];
  /** Extra environment of every process. @default none */
  env?: Record<string, string>;
}

let fleets = 0;

/** A fresh database (migrated) and namespace, the producer (ready) and `workers` worker processes. */
export async function startFleet(o: FleetOptions): Promise<Fleet> {
  const name = `bench_${process.pid}_${++fleets}`;
  const admin = new Client({ connectionString: o.pgAdminUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const databaseUrl = o.pgAdminUrl.replace(/\/postgres$/, `/${name}`);
  const port = await freePort();
  const namespace = `bench-${process.pid}-${fleets}`;
  const env = {
    REDIS_URL: o.redisUrl,
    DATABASE_URL: databaseUrl,
    PORT: String(port),
    HOST: '127.0.0.1',
    TRADEFLEET_NAMESPACE: namespace,
    ...o.env,
  };
  const migrate = cli(['migrate'], env);
  await exited(migrate);
  if (migrate.exitCode !== 0) throw new Error(`migrate failed: ${migrate.err()}`);
  const producer = cli(['producer'], env, o.nodeArgs);
  const workers: BenchChild[] = [];
  const addWorker = (nodeArgs = o.nodeArgs) => {
    const w = cli(['worker'], env, nodeArgs);
    workers.push(w);
    return w;
  };
  for (let i = 0; i < o.workers; i++) addWorker();
  const api = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if ((await fetch(`${api}/readyz`).catch(() => undefined))?.ok) break;
    if (i > 300) throw new Error(`producer not ready: ${producer.err()}`);
    await sleep(100);
  }
  await sleep(500); // workers connected
  return {
    api,
    keys: new QueueKeys(namespace),
    databaseUrl,
    env,
    producer,
    workers,
    addWorker,
    async stop() {
      for (const c of [...workers, producer]) c.kill('SIGTERM');
      await Promise.all([...workers, producer].map(exited));
    },
  };
}

/** POSTs one batch, waiting out 429/503 answers. */
export async function postBatch(api: string, trades: Record<string, string>[]): Promise<void> {
  for (;;) {
    const res = await fetch(`${api}/v1/trades/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ trades }),
    });
    await res.arrayBuffer();
    if (res.status === 429 || res.status === 503) {
      await sleep(200);
      continue;
    }
    if (res.status >= 300) throw new Error(`POST batch: HTTP ${res.status}`);
    return;
  }
}

/** Posts every trade, `posters` clients at once, in batches of `batch`. */
export async function postAll(
  api: string,
  trades: Record<string, string>[],
  posters: number,
  batch: number,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: posters }, async () => {
      for (;;) {
        const i = next;
        next += batch;
        if (i >= trades.length) return;
        await postBatch(api, trades.slice(i, i + batch));
      }
    }),
  );
}

/**
 * CPU seconds (user + system) of a process and, with `tree`, of its children
 * (PostgreSQL's backends and helpers): those alive now, plus those that
 * exited, which the parent reaped (cutime + cstime of the parent).
 */
export function cpuSeconds(pid: number, tree = false): number {
  const tick = 100; // USER_HZ
  const fieldsOf = (p: number): string[] | undefined => {
    try {
      const f = readFileSync(`/proc/${p}/stat`, 'utf8');
      return f.slice(f.lastIndexOf(')') + 2).split(' ');
    } catch {
      return undefined; // gone
    }
  };
  const own = fieldsOf(pid);
  if (!own) return 0;
  let total = (Number(own[11]) + Number(own[12])) / tick;
  if (tree) {
    total += (Number(own[13]) + Number(own[14])) / tick;
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      const f = fieldsOf(Number(d));
      if (f && Number(f[1]) === pid) total += (Number(f[11]) + Number(f[12])) / tick;
    }
  }
  return total;
}
