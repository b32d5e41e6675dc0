/**
 * The producer under ten times its normal load: does it answer 429 and keep
 * its memory bounded, or fall over?
 *
 *   npm run bench:load          (writes bench/results/producer-load.{json,md})
 *   CONNECTIONS=1024 RESULT=producer-load-1024 npm run bench:load
 *                               (more connections than MAX_INFLIGHT_REQUESTS: load shedding shows)
 *   REPORT_ONLY=1 [RESULT=...] npm run bench:load   (re-renders the .md of a recorded .json)
 *
 * 1. Baseline: the producer process (`tradefleet producer`, API tokens on, rate
 *    limit off) against its own Redis; BASELINE_CONNECTIONS closed-loop clients
 *    post single trades for BASELINE_SECONDS. Its rate of 202s is the normal
 *    sustainable rate R.
 * 2. Overload: a fresh producer (empty Redis) with RATE_LIMIT_PER_SECOND set so
 *    that the CLIENTS tokens together may submit LIMIT_SHARE x R trades/s (the
 *    rest of the capacity answers the refused), MAX_BACKLOG and
 *    MAX_INFLIGHT_REQUESTS at their defaults; an open-loop generator offers FACTOR x R requests/s for
 *    OVERLOAD_SECONDS over up to CONNECTIONS keep-alive sockets, spread over the
 *    CLIENTS tokens. Requests are scheduled at fixed times whatever the answers
 *    (latency counts from the scheduled time, so queueing shows); one that
 *    would exceed MAX_OUTSTANDING in flight is counted as not sent. The
 *    producer's RSS (from /proc) and heap (its /metrics) are sampled every second.
 * 3. Afterwards: /healthz, and a trade from one of the clients (its bucket refilled), must still be accepted.
 *
 * No worker drains the queue (the producer's cost does not depend on it).
 * The producer runs from the sources (bin/tradefleet.js through tsx) at
 * LOG_LEVEL (default info, as deployed), its stdout discarded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';

import IORedis from 'ioredis';

import { freePort, startPostgres, startRedis } from '../src/dev/local-servers';
import { QueueKeys } from '../src/queue/keys';

const BASELINE_SECONDS = Number(process.env.BASELINE_SECONDS ?? 10);
const BASELINE_CONNECTIONS = Number(process.env.BASELINE_CONNECTIONS ?? 32);
const OVERLOAD_SECONDS = Number(process.env.OVERLOAD_SECONDS ?? 60);
const FACTOR = Number(process.env.FACTOR ?? 10);
const CLIENTS = Number(process.env.CLIENTS ?? 4);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 256);
const MAX_OUTSTANDING = Number(process.env.MAX_OUTSTANDING ?? 4096);
const MAX_BACKLOG = Number(process.env.MAX_BACKLOG ?? 1_000_000);
/** The clients together may submit this share of R: headroom left for answering the refused. */
const LIMIT_SHARE = Number(process.env.LIMIT_SHARE ?? 0.5);
/** Results go to bench/results/<RESULT>.{json,md}. */
const RESULT = process.env.RESULT ?? 'producer-load';
/** The producer pod's memory limit in the manifests (cdk8s/config.ts: 512Mi). */
const POD_MEMORY_LIMIT_MB = 512;
const LOG_LEVEL = process.env.LOG_LEVEL ?? 'info';

const ROOT = join(__dirname, '..');
const RESULTS = join(__dirname, 'results');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ producer

interface Producer {
  child: ChildProcess;
  port: number;
  stderr: () => string;
}

async function startProducer(env: Record<string, string>): Promise<Producer> {
  const port = await freePort();
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'tradefleet.js'), 'producer'], {
    env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the producer exited (${child.exitCode}): ${err}`);
    const ok = await fetch(`http://127.0.0.1:${port}/readyz`)
      .then((r) => r.status === 200)
      .catch(() => false);
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`the producer was not ready within 60 s: ${err}`);
    await sleep(200);
  }
  return { child, port, stderr: () => err };
}

async function stopProducer(p: Producer): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = new Promise((r) => p.child.once('exit', r));
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
}

/** CPU time (ms) the process has used, user + system. */
function cpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10; // clock ticks of 10 ms
  } catch {
    return 0;
  }
}

function memory(pid: number): { rssMb: number; hwmMb: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
    return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
  } catch {
    return { rssMb: 0, hwmMb: 0 };
  }
}

/** Heap used (MB) from the producer's own /metrics, or null when it did not answer within 2 s. */
async function heapMb(port: number, token: string): Promise<number | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(2000),
    });
    const m = /_nodejs_heap_size_used_bytes (\d+(?:\.\d+)?(?:e\+\d+)?)/.exec(await res.text());
    return m ? Number(m[1]) / 2 ** 20 : null;
  } catch {
    return null;
  }
}

// ------------------------------------------------------------------ load

const run = randomBytes(3).toString('hex');
let tradeNo = 0;
function tradeBody(): string {
  tradeNo += 1;
  const p = tradeNo % 1000;
  return (
    `{"tradeId":"L-${run}-${tradeNo}","type":"NEW","accountId":"ACC-${p}","bookId":"BOOK",` +
    `"securityId":"SEC-${p}","side":"BUY","quantity":"10","price":"101.25","currency":"USD",` +
    `"tradeTime":"2026-11-22T10:15:30Z"}`
  );
}

interface Outcome {
  status: number; // 0: transport error
  code?: string;
  /** From the scheduled send time (open loop) or the call (closed loop) to the answer. */
  ms: number;
  /** From the moment the request got a connection to the answer: the producer's own share. */
  serviceMs: number;
}

function post(
  agent: http.Agent,
  port: number,
  token: string,
  body: string,
): Promise<Omit<Outcome, 'ms' | 'serviceMs'> & { onSocketAt: number }> {
  return new Promise((resolve) => {
    let onSocketAt = performance.now();
    const req = http.request(
      {
        agent,
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/v1/trades',
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          authorization: `Bearer ${token}`,
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          if (text.length < 200) text += d;
        });
        res.on('end', () => {
          const code = /"code":"([a-z_]+)"/.exec(text)?.[1];
          resolve({ status: res.statusCode ?? 0, ...(code ? { code } : {}), onSocketAt });
        });
        res.on('error', () => resolve({ status: 0, code: 'response_error', onSocketAt }));
      },
    );
    req.once('socket', () => (onSocketAt = performance.now()));
    req.on('error', (err: NodeJS.ErrnoException) =>
      resolve({ status: 0, code: err.code ?? 'error', onSocketAt }),
    );
    req.end(body);
  });
}

class Recorder {
  readonly counts = new Map<string, number>();
  readonly latency = new Map<string, number[]>();
  readonly service: number[] = [];
  record(o: Outcome): void {
    this.service.push(o.serviceMs);
    const key = o.status === 0 ? `error:${o.code}` : o.code ? `${o.status} ${o.code}` : String(o.status);
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    const cls = o.status === 0 ? 'error' : String(o.status);
    let xs = this.latency.get(cls);
    if (!xs) this.latency.set(cls, (xs = []));
    xs.push(o.ms);
    let all = this.latency.get('all');
    if (!all) this.latency.set('all', (all = []));
    all.push(o.ms);
  }
  count(prefix: string): number {
    let n = 0;
    for (const [k, v] of this.counts) if (k.startsWith(prefix)) n += v;
    return n;
  }
}

function percentiles(xs: number[]): { n: number; p50: number; p99: number; max: number } {
  if (xs.length === 0) return { n: 0, p50: 0, p99: 0, max: 0 };
  const s = Float64Array.from(xs).sort();
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  const r = (v: number) => Math.round(v * 10) / 10;
  return { n: s.length, p50: r(at(0.5)), p99: r(at(0.99)), max: r(s[s.length - 1]!) };
}

/** Closed loop: `connections` clients, each posting the next trade when the last one answered. */
async function closedLoop(port: number, tokens: string[], connections: number, seconds: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const rec = new Recorder();
  const end = Date.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: connections }, async (_, i) => {
      const token = tokens[i % tokens.length]!;
      while (Date.now() < end) {
        const t0 = performance.now();
        const o = await post(agent, port, token, tradeBody());
        const now = performance.now();
        rec.record({ ...o, ms: now - t0, serviceMs: now - o.onSocketAt });
      }
    }),
  );
  agent.destroy();
  return rec;
}

interface Sample {
  t: number;
  /** Producer CPU over the last second, percent of one core. */
  cpu: number;
  /** The load generator's (this process's) CPU over the last second, percent of one core. */
  generatorCpu: number;
  /** The whole machine's busy CPU over the last second, percent of one core (2 cores: up to 200). */
  machineCpu: number;
  rssMb: number;
  heapMb: number | null;
  done: number;
  outstanding: number;
}

/** Open loop at `rate` requests/s for `seconds`, sampling the producer every second. */
async function openLoop(p: Producer, tokens: string[], rate: number, seconds: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const rec = new Recorder();
  const samples: Sample[] = [];
  let issued = 0;
  let notSent = 0;
  let outstanding = 0;
  let done = 0;
  const start = performance.now();
  const endAt = start + seconds * 1000;
  let sampling = true;
  const sampler = (async () => {
    let lastCpu = cpuMs(p.child.pid!);
    let lastSelf = process.cpuUsage();
    let lastMachine = machineBusyMs();
    for (let s = 1; sampling; s++) {
      await sleep(Math.max(0, start + s * 1000 - performance.now()));
      if (!sampling) break;
      const mem = memory(p.child.pid!);
      const cpu = cpuMs(p.child.pid!);
      const self = process.cpuUsage(lastSelf);
      const machine = machineBusyMs();
      samples.push({
        t: s,
        cpu: Math.round((cpu - lastCpu) / 10),
        generatorCpu: Math.round((self.user + self.system) / 10_000),
        machineCpu: Math.round((machine - lastMachine) / 10),
        rssMb: mem.rssMb,
        heapMb: null,
        done,
        outstanding,
      });
      lastCpu = cpu;
      lastSelf = process.cpuUsage();
      lastMachine = machine;
      const sample = samples[samples.length - 1]!;
      void heapMb(p.port, tokens[0]!).then((h) => (sample.heapMb = h));
    }
  })();
  while (performance.now() < endAt) {
    const now = performance.now();
    const due = Math.floor(((now - start) / 1000) * rate);
    while (issued < due) {
      const scheduled = start + (issued / rate) * 1000;
      issued += 1;
      if (outstanding >= MAX_OUTSTANDING) {
        notSent += 1;
        continue;
      }
      outstanding += 1;
      void post(agent, p.port, tokens[issued % tokens.length]!, tradeBody()).then((o) => {
        outstanding -= 1;
        done += 1;
        const now = performance.now();
        rec.record({ ...o, ms: now - scheduled, serviceMs: now - o.onSocketAt });
      });
    }
    // Yield to the event loop so that responses are handled; ~1 ms ticks.
    await new Promise((r) => setTimeout(r, 1));
  }
  const drainDeadline = performance.now() + 30_000;
  while (outstanding > 0 && performance.now() < drainDeadline) await sleep(50);
  sampling = false;
  await sampler;
  agent.destroy();
  return {
    rec,
    samples,
    issued,
    notSent,
    unanswered: outstanding,
    seconds: (performance.now() - start) / 1000,
  };
}

// ------------------------------------------------------------------ run

/** Busy CPU time (ms) of the whole machine, all cores. */
function machineBusyMs(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait.
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - (f[3] ?? 0) - (f[4] ?? 0)) * 10;
}

/** CPU time (ms) of every process, by pid, with its command line. */
function allCpu(): Map<number, { ms: number; cmd: string }> {
  const out = new Map<number, { ms: number; cmd: string }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      out.set(pid, { ms: cpuMs(pid), cmd: cmd || `[${pid}]` });
    } catch {
      // gone
    }
  }
  return out;
}

/** What else keeps the machine busy: the processes using CPU over one second, before the run. */
async function otherLoad(): Promise<{ loadavg: number[]; top: string[] }> {
  const before = allCpu();
  await sleep(1000);
  const top = [...allCpu()]
    .map(([pid, { ms, cmd }]) => ({ pct: (ms - (before.get(pid)?.ms ?? ms)) / 10, cmd }))
    .filter((p) => p.pct >= 2)
    .sort((a, b) => b.pct - a.pct)
    .slice(0, 8)
    .map((p) => `${Math.round(p.pct)}% ${p.cmd.slice(0, 120)}`);
  return { loadavg: loadavg().map((x) => Math.round(x * 100) / 100), top };
}

async function main(): Promise<void> {
  if (process.env.REPORT_ONLY) {
    // Re-render the markdown of a recorded run.
    const recorded = JSON.parse(readFileSync(join(RESULTS, `${RESULT}.json`), 'utf8')) as Result;
    writeFileSync(join(RESULTS, `${RESULT}.md`), markdown(recorded));
    return;
  }
  const before = await otherLoad();
  const [redisServer, pg] = await Promise.all([startRedis(), startPostgres()]);
  const admin = new IORedis(redisServer.url, { maxRetriesPerRequest: null });
  const tokens = Array.from({ length: CLIENTS }, () => randomBytes(24).toString('base64url'));
  const baseEnv = {
    REDIS_URL: redisServer.url,
    DATABASE_URL: pg.url,
    TRADEFLEET_NAMESPACE: 'load',
    API_TOKENS: tokens.join(','),
    MAX_BACKLOG: String(MAX_BACKLOG),
    SHUTDOWN_TIMEOUT_MS: '5000',
  };
  try {
    // 1. Baseline.
    console.error(`baseline: ${BASELINE_CONNECTIONS} closed-loop clients for ${BASELINE_SECONDS} s`);
    let producer = await startProducer(baseEnv);
    await closedLoop(producer.port, tokens, 8, 2); // warm-up (JIT, connections)
    const baseStart = memory(producer.child.pid!);
    const baseCpu0 = cpuMs(producer.child.pid!);
    const baseline = await closedLoop(producer.port, tokens, BASELINE_CONNECTIONS, BASELINE_SECONDS);
    const baseCpu = Math.round((cpuMs(producer.child.pid!) - baseCpu0) / 10 / BASELINE_SECONDS);
    const baseEnd = memory(producer.child.pid!);
    const accepted = baseline.count('202');
    const normalRate = Math.round(accepted / BASELINE_SECONDS);
    console.error(`  normal sustainable rate R = ${normalRate} trades/s (${accepted} accepted)`);
    await stopProducer(producer);
    await admin.flushall();

    // 2. Overload.
    const perClient = Math.max(1, Math.round((normalRate * LIMIT_SHARE) / CLIENTS));
    const offered = normalRate * FACTOR;
    console.error(
      `overload: ${offered} requests/s (${FACTOR} x R) for ${OVERLOAD_SECONDS} s, rate limit ${perClient}/s per client x ${CLIENTS} clients`,
    );
    producer = await startProducer({
      ...baseEnv,
      RATE_LIMIT_PER_SECOND: String(perClient),
      RATE_LIMIT_BURST: String(perClient),
    });
    await closedLoop(producer.port, tokens, 8, 2);
    const overStart = memory(producer.child.pid!);
    const overload = await openLoop(producer, tokens, offered, OVERLOAD_SECONDS);
    const overEnd = memory(producer.child.pid!);

    // 3. Still standing?
    await sleep(2000);
    const healthz = await fetch(`http://127.0.0.1:${producer.port}/healthz`)
      .then((r) => r.status)
      .catch(() => 0);
    const fresh = await post(new http.Agent(), producer.port, tokens[0]!, tradeBody());
    const alive = producer.child.exitCode === null && producer.child.signalCode === null;
    const backlog = Number(await admin.hlen(new QueueKeys('load').backlog).catch(() => -1));
    await stopProducer(producer);

    // Memory bounded: RSS rises and falls with the garbage collector, so the live heap is judged
    // by the lowest heap-used sample of each 10 s window (just after a collection): the last
    // window's may not exceed the second's by more than 25% (+10 MB), and RSS must stay under
    // the producer pod's memory limit (cdk8s/config.ts: 512Mi).
    const rss = overload.samples.map((s) => s.rssMb);
    const windowMins: number[] = [];
    for (let w = 0; w * 10 < overload.samples.length; w++) {
      const hs = overload.samples
        .slice(w * 10, w * 10 + 10)
        .map((s) => s.heapMb)
        .filter((h): h is number => h !== null);
      if (hs.length > 0) windowMins.push(Math.round(Math.min(...hs) * 10) / 10);
    }
    const reference = windowMins[1] ?? windowMins[0] ?? 0;
    const lastMin = windowMins[windowMins.length - 1] ?? 0;
    const bounded = lastMin <= reference * 1.25 + 10 && Math.max(...rss) < POD_MEMORY_LIMIT_MB;
    const heaps = overload.samples.map((s) => s.heapMb).filter((h): h is number => h !== null);
    const round = (x: number) => Math.round(x * 10) / 10;
    const avg = (xs: number[]) => Math.round(xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length));
    const answered = overload.rec.count('');
    const result = {
      when: new Date().toISOString(),
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '', memGb: round(totalmem() / 2 ** 30) },
      node: process.version,
      otherLoadAtStart: before,
      settings: {
        BASELINE_SECONDS,
        BASELINE_CONNECTIONS,
        OVERLOAD_SECONDS,
        FACTOR,
        CLIENTS,
        CONNECTIONS,
        MAX_OUTSTANDING,
        MAX_BACKLOG,
        LOG_LEVEL,
        LIMIT_SHARE,
        RATE_LIMIT_PER_SECOND: perClient,
        RATE_LIMIT_BURST: perClient,
      },
      baseline: {
        normalRate,
        statuses: Object.fromEntries(baseline.counts),
        latencyMs: percentiles(baseline.latency.get('all') ?? []),
        producerCpuPercent: baseCpu,
        rssMb: { start: round(baseStart.rssMb), end: round(baseEnd.rssMb) },
      },
      overload: {
        offeredPerSecond: offered,
        scheduled: overload.issued,
        notSent: overload.notSent,
        unanswered: overload.unanswered,
        answered,
        answeredPerSecond: Math.round(answered / overload.seconds),
        acceptedPerSecond: Math.round(overload.rec.count('202') / overload.seconds),
        statuses: Object.fromEntries([...overload.rec.counts].sort(([a], [b]) => a.localeCompare(b))),
        latencyMs: Object.fromEntries(
          [...overload.rec.latency].map(([k, xs]) => [k, percentiles(xs)] as const),
        ),
        serviceLatencyMs: percentiles(overload.rec.service),
        rssMb: {
          start: round(overStart.rssMb),
          min: round(Math.min(...rss)),
          max: round(Math.max(...rss)),
          end: round(overEnd.rssMb),
          peak: round(overEnd.hwmMb),
        },
        heapUsedMb: heaps.length
          ? { min: round(Math.min(...heaps)), max: round(Math.max(...heaps)), samples: heaps.length }
          : null,
        heapUsedMinPer10sMb: windowMins,
        producerCpuPercent: avg(overload.samples.map((x) => x.cpu)),
        generatorCpuPercent: avg(overload.samples.map((x) => x.generatorCpu)),
        machineCpuPercent: avg(overload.samples.map((x) => x.machineCpu)),
        bounded,
        samples: overload.samples.map((s) => ({
          ...s,
          rssMb: round(s.rssMb),
          heapMb: s.heapMb && round(s.heapMb),
        })),
      },
      after: { alive, healthz, freshTradeStatus: fresh.status, backlog },
    };
    mkdirSync(RESULTS, { recursive: true });
    writeFileSync(join(RESULTS, `${RESULT}.json`), `${JSON.stringify(result, null, 2)}\n`);
    writeFileSync(join(RESULTS, `${RESULT}.md`), markdown(result));
    console.error(markdown(result));
  } finally {
    await admin.quit().catch(() => undefined);
    await Promise.allSettled([redisServer.stop(), pg.stop()]);
  }
}

type Result = {
  when: string;
  machine: { cpus: number; cpuModel: string; memGb: number };
  node: string;
  otherLoadAtStart: { loadavg: number[]; top: string[] };
  settings: Record<string, number | string>;
  baseline: {
    normalRate: number;
    statuses: Record<string, number>;
    latencyMs: ReturnType<typeof percentiles>;
    producerCpuPercent: number;
    rssMb: { start: number; end: number };
  };
  overload: {
    offeredPerSecond: number;
    scheduled: number;
    notSent: number;
    unanswered: number;
    answered: number;
    answeredPerSecond: number;
    acceptedPerSecond: number;
    statuses: Record<string, number>;
    latencyMs: Record<string, ReturnType<typeof percentiles>>;
    serviceLatencyMs: ReturnType<typeof percentiles>;
    rssMb: { start: number; min: number; max: number; end: number; peak: number };
    heapUsedMb: { min: number; max: number; samples: number } | null;
    heapUsedMinPer10sMb: number[];
    producerCpuPercent: number;
    generatorCpuPercent: number;
    machineCpuPercent: number;
    bounded: boolean;
  };
  after: { alive: boolean; healthz: number; freshTradeStatus: number; backlog: number };
};

function markdown(r: Result): string {
  const o = r.overload;
  const lat = (k: string) => {
    const p = o.latencyMs[k];
    return p ? `| ${k} | ${p.n} | ${p.p50} | ${p.p99} | ${p.max} |` : '';
  };
  return [
    '# Producer under 10x load',
    '',
    `Run ${r.when} by \`npm run bench:load\` (bench/producer-load.ts) on ${r.machine.cpus} CPUs (${r.machine.cpuModel}), ` +
      `${r.machine.memGb} GB, Node ${r.node}. The producer, its Redis and PostgreSQL and the load generator share the machine.`,
    `Load average when the run started: ${r.otherLoadAtStart.loadavg.join(', ')}; processes using CPU in the second before it:` +
      (r.otherLoadAtStart.top.length === 0 ? ' none above 2%.' : ''),
    '',
    ...r.otherLoadAtStart.top.map((l) => `    ${l}`),
    '',
    '## Baseline',
    '',
    `${r.settings.BASELINE_CONNECTIONS} closed-loop clients posting single trades for ${r.settings.BASELINE_SECONDS} s, ` +
      `rate limit off: **R = ${r.baseline.normalRate} trades/s** accepted (202), latency p50 ${r.baseline.latencyMs.p50} ms, ` +
      `p99 ${r.baseline.latencyMs.p99} ms; producer CPU ${r.baseline.producerCpuPercent}% of a core; ` +
      `RSS ${r.baseline.rssMb.start} -> ${r.baseline.rssMb.end} MB. ` +
      `Statuses: ${JSON.stringify(r.baseline.statuses)}.`,
    '',
    '## Overload',
    '',
    `Open loop at **${o.offeredPerSecond} requests/s** (${r.settings.FACTOR} x R) for ${r.settings.OVERLOAD_SECONDS} s over up to ` +
      `${r.settings.CONNECTIONS} keep-alive connections and ${r.settings.CLIENTS} API tokens; ` +
      `RATE_LIMIT_PER_SECOND=${r.settings.RATE_LIMIT_PER_SECOND} (burst ${r.settings.RATE_LIMIT_BURST}) per token, ` +
      `so the clients together may submit ${r.settings.LIMIT_SHARE} x R trades/s; MAX_BACKLOG=${r.settings.MAX_BACKLOG}; ` +
      `MAX_INFLIGHT_REQUESTS at its default; LOG_LEVEL=${r.settings.LOG_LEVEL}.`,
    '',
    `- scheduled ${o.scheduled}, not sent by the generator (over ${r.settings.MAX_OUTSTANDING} outstanding) ${o.notSent}, ` +
      `answered ${o.answered} (${o.answeredPerSecond}/s), unanswered at the end ${o.unanswered}`,
    `- accepted ${o.acceptedPerSecond} trades/s`,
    `- CPU, average over the run, in % of one core (the machine has ${r.machine.cpus}): producer ${o.producerCpuPercent}, ` +
      `load generator ${o.generatorCpuPercent}, whole machine ${o.machineCpuPercent} ` +
      `(the rest: Redis, PostgreSQL and whatever else ran)`,
    `- statuses: ${Object.entries(o.statuses)
      .map(([k, v]) => `${k}: ${v}`)
      .join(', ')}`,
    `- producer RSS (rises and falls with garbage collection): start ${o.rssMb.start} MB, min ${o.rssMb.min}, max ${o.rssMb.max}, end ${o.rssMb.end}, peak (VmHWM) ${o.rssMb.peak} MB` +
      (o.heapUsedMb
        ? `; heap used ${o.heapUsedMb.min}-${o.heapUsedMb.max} MB (${o.heapUsedMb.samples} samples)`
        : ''),
    `- lowest heap used in each 10 s window (the live heap, just after a collection): ${o.heapUsedMinPer10sMb.join(', ')} MB`,
    `- memory bounded: **${o.bounded ? 'yes' : 'NO'}** (the last window's lowest heap at most 1.25 x the second's + 10 MB, ` +
      `and RSS always under the producer pod's ${POD_MEMORY_LIMIT_MB} MiB limit)`,
    `- afterwards: producer ${r.after.alive ? 'alive' : 'DEAD'}, /healthz ${r.after.healthz}, a new trade answered ${r.after.freshTradeStatus}; backlog ${r.after.backlog}`,
    '',
    'Latency in ms, from the time each request was scheduled (so time waiting for a free connection counts):',
    '',
    '| status | n | p50 | p99 | max |',
    '| ------ | - | --- | --- | --- |',
    ...['all', '202', '429', '503', 'error'].map(lat).filter((l) => l !== ''),
    '',
    '## Reading',
    '',
    `The producer answered every request it was sent, with 202 for about the configured limit ` +
      `(${o.acceptedPerSecond}/s accepted for ${Math.round(r.baseline.normalRate * Number(r.settings.LIMIT_SHARE))}/s allowed) ` +
      `and ${o.statuses['503 overloaded'] ? '429 or 503' : '429'} for the rest` +
      `${Object.keys(o.statuses).some((k) => !/^(202|429|503 overloaded)/.test(k)) ? ' (and the other answers counted above)' : ', nothing else'}; ` +
      `its memory ${o.bounded ? 'stayed bounded' : 'did NOT stay bounded'}. ` +
      `It could not answer ${r.settings.FACTOR} x R, though: at ${o.producerCpuPercent}% of a core it answered ` +
      `${o.answeredPerSecond} requests/s, a refusal costing a fraction of an acceptance but not nothing (HTTP parsing, ` +
      `routing, auth); the rest of the offered load waited in the clients' queues ("not sent"), which is where the ` +
      `latency from the scheduled time comes from. One replica on a shared 2-core machine refuses a few thousand ` +
      `requests a second; more load than that needs more replicas (the HPA scales the producer on CPU).`,
    '',
    `From the moment a request had a connection (the producer's share, without the generator's queue; ` +
      `for a new connection this includes its TCP set-up, which waits for the producer to accept it): ` +
      `p50 ${o.serviceLatencyMs.p50} ms, p99 ${o.serviceLatencyMs.p99} ms, max ${o.serviceLatencyMs.max} ms.`,
    '',
    `Per-second samples (producer CPU, RSS, heap, answers, outstanding) are in ${RESULT}.json.`,
    '',
  ].join('\n');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
