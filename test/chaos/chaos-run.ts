/**
 * The chaos run: a whole tradefleet fleet through the `tradefleet` CLI (one
 * producer, N workers) against its own Redis (AOF, appendfsync always) and
 * PostgreSQL, fed a skewed trade stream over HTTP while faults are injected,
 * then checked from the database, the API and the worker logs.
 *
 * Used by bench/chaos.ts (`npm run chaos`, the full run) and by
 * test/chaos/chaos.test.ts (a shorter run inside `npm test`). Nothing here
 * uses Jest.
 *
 * Faults, spread over the posting phase:
 * - worker-sigkill: SIGKILL a random worker every `killEveryMs` and start a new one;
 * - worker-sigstop: SIGSTOP a worker caught committing a batch of a backlog (so
 *   that it holds a partition with work in flight) for `stopMs`, past its lease, then SIGCONT;
 * - redis-conn-cut: `CLIENT KILL ID` of every Redis connection of one worker (the hottest partition's holder)
 *   (found by matching CLIENT LIST's addr with the worker's own sockets in /proc);
 * - redis-restart: SIGKILL redis-server (or SIGTERM, `redisFault: 'restart'`), wait, restart it on its AOF;
 * - postgres-restart: SIGKILL the postmaster, wait, restart it (crash recovery).
 *
 * The poster retries 429/503 after Retry-After, and a request that timed out
 * or whose connection dropped with the SAME payloads (enqueue is idempotent
 * per tradeId); seqs come from the answers, duplicates' included.
 */
import type { ChildProcess } from 'node:child_process';
import {
  createWriteStream,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  type WriteStream,
} from 'node:fs';
import { join } from 'node:path';
import IORedis from 'ioredis';
import { Client } from 'pg';
import { canonicalDecimalString, partitionKey } from '../../src/domain';
import { readSignals } from '../../src/queue';
import { checkPositionsAgainstFold, startFleet, type Fleet } from '../helpers/fleet';
import { outputOf, spawnCli, stopAll } from '../helpers/processes';
import { startPostgres, startRedis, type PostgresServer, type RedisServer } from '../helpers/servers';
import { generateTrades, type ExpectedPartition } from '../helpers/trades';

export interface ChaosOptions {
  /** Messages posted (duplicates included). */
  trades: number;
  partitions: number;
  /** Zipf exponent of the partition choice. */
  zipf: number;
  duplicateRate: number;
  chainRate: number;
  seed: number;
  workers: number;
  /** Target duration of the posting phase (posting is paced to it). */
  postSeconds: number;
  /** Trades per POST /v1/trades/batch. */
  postBatch: number;
  /** Every n-th unit of `postBatch` trades is posted one by one through POST /v1/trades. */
  singlesEvery: number;
  /** Concurrent posting loops. */
  posters: number;
  /** LOCK_DURATION_MS of the workers. */
  lockMs: number;
  stalledMs: number;
  /** MAX_BACKLOG of the producer (429 past it); 0 = unlimited. */
  maxBacklog: number;
  killEveryMs: number;
  /** How long the SIGSTOPped worker stays stopped (past its lease). */
  stopMs: number;
  redisDownMs: number;
  pgDownMs: number;
  /** 'crash' = SIGKILL then restart (the default); 'restart' = RedisServer.restart() (SIGTERM). */
  redisFault: 'crash' | 'restart';
  /** Per-request timeout of the poster. */
  requestTimeoutMs: number;
  /**
   * Fraction of requests the poster itself aborts a few milliseconds after
   * sending (a client whose connection drops mid-request); it then retries
   * the same payloads, as it does after a timeout.
   */
  abortRate: number;
  drainTimeoutMs: number;
  /** Partitions and trades looked up through the API after the drain. */
  apiSamples: number;
  /** Where worker and producer logs are written. */
  workDir: string;
  log: (line: string) => void;
}

export const FULL_RUN: Omit<ChaosOptions, 'workDir' | 'log'> = {
  trades: 100_000,
  partitions: 5000,
  zipf: 1,
  duplicateRate: 0.02,
  chainRate: 0.5,
  seed: 20261122,
  workers: 4,
  postSeconds: 120,
  postBatch: 200,
  singlesEvery: 25,
  posters: 3,
  lockMs: 2000,
  stalledMs: 1000,
  maxBacklog: 2000,
  killEveryMs: 5000,
  stopMs: 5000,
  redisDownMs: 2000,
  pgDownMs: 3000,
  redisFault: 'crash',
  requestTimeoutMs: 10_000,
  abortRate: 0.03,
  drainTimeoutMs: 300_000,
  apiSamples: 100,
};

export type FaultKind =
  'worker-sigkill' | 'worker-sigstop' | 'redis-conn-cut' | 'redis-restart' | 'postgres-restart';
export const FAULT_KINDS: readonly FaultKind[] = [
  'worker-sigkill',
  'worker-sigstop',
  'redis-conn-cut',
  'redis-restart',
  'postgres-restart',
];

export interface FaultRecord {
  kind: FaultKind;
  /** ms since the start of posting */
  at: number;
  /** When the fault ended (restart done, SIGCONT sent); = at for a kill or a cut. */
  healedAt: number;
  victimPid?: number;
  detail: string;
  /**
   * Partitions whose latest commit was the victim's and that had trades
   * waiting (accepted past their last commit) at the fault: `upTo` is the
   * partition's last accepted seq then.
   */
  affected: { pk: string; upTo: number }[];
  /**
   * ms from the start of the fault until the backlog moved again: the first
   * commit after the restart (server faults), or the latest first re-commit
   * among the partitions that were waiting on the victim (worker faults; for a
   * cut connection the victim's own re-commit counts). null: nothing was
   * waiting on the victim.
   */
  recoveryMs: number | null;
}

export interface ChaosReport {
  options: Omit<ChaosOptions, 'log'>;
  startedAt: string;
  durations: { postMs: number; drainMs: number; checkMs: number; totalMs: number };
  trades: {
    messages: number;
    unique: number;
    generatedDuplicates: number;
    partitionsUsed: number;
    hottestPartitionTrades: number;
    accepted: number;
    applied: number;
    deadLettered: number;
    deadLetterReasons: Record<string, number>;
  };
  posting: {
    requests: number;
    byStatus: Record<string, number>;
    timeouts: number;
    connectionErrors: number;
    /** Requests the poster aborted on purpose mid-flight (then retried with the same payloads). */
    abortedByClient: number;
    retried: number;
    /** Trades whose seq came from a duplicate answer to a retried request (their first attempt's fate was unknown). */
    seqFromRetryDuplicate: number;
    maxRetriesOfOneRequest: number;
  };
  faults: FaultRecord[];
  faultCounts: Record<FaultKind, number>;
  checks: {
    lost: number;
    duplicated: number;
    reordered: number;
    unexpected: number;
    positionMismatches: number;
    deadLettersWithoutReason: number;
    deadLetterMismatches: number;
    apiMismatches: number;
    apiChecked: number;
    logBatches: number;
    logOverlaps: number;
    logEpochRegressions: number;
    /** Commits without an 'applied batch' line: a SIGKILLed worker died between its commit and its log line. */
    logGaps: number;
    zombieFenced: number;
  };
  workerLog: Record<string, number>;
  haltedPartitions: number;
  /** Every violation found (empty on success), at most 50. */
  problems: string[];
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------
// Worker logs

/** One 'applied batch' line of a worker: a committed PostgreSQL transaction. */
interface AppliedBatch {
  t: number;
  pid: number;
  pk: string;
  epoch: number;
  firstSeq: number;
  lastSeq: number;
  skipped: number;
  positionLastSeq: number;
}

class LogCollector {
  readonly batches: AppliedBatch[] = [];
  /** msg -> count, for the lines that say something about faults. */
  readonly counts: Record<string, number> = {};
  /** pid -> lines (msg) after a given time, for the zombie. */
  readonly byPid = new Map<number, { t: number; msg: string }[]>();
  private readonly files: WriteStream[] = [];

  constructor(private readonly dir: string) {}

  attach(child: ChildProcess, label: string, parse: boolean): void {
    const file = createWriteStream(join(this.dir, `${label}-${child.pid}.log`));
    this.files.push(file);
    let rest = '';
    child.stdout?.on('data', (d: Buffer) => {
      file.write(d);
      if (!parse) return;
      const text = rest + d.toString();
      const lines = text.split('\n');
      rest = lines.pop()!;
      for (const line of lines) this.line(child.pid!, line);
    });
    child.stderr?.on('data', (d: Buffer) => file.write(d));
  }

  /** Called with every committed batch as its line arrives. */
  onBatch: ((b: AppliedBatch) => void) | undefined;

  private line(pid: number, line: string): void {
    if (line.includes('"msg":"applied batch"')) {
      try {
        const o = JSON.parse(line) as Record<string, unknown>;
        const b: AppliedBatch = {
          t: Date.parse(o.time as string),
          pid,
          pk: o.partitionKey as string,
          epoch: o.epoch as number,
          firstSeq: o.firstSeq as number,
          lastSeq: o.lastSeq as number,
          skipped: o.skipped as number,
          positionLastSeq: o.positionLastSeq as number,
        };
        this.batches.push(b);
        this.onBatch?.(b);
      } catch {
        this.bump('(unparsable applied batch line)');
      }
      return;
    }
    if (!line.startsWith('{')) return;
    try {
      const o = JSON.parse(line) as { level?: string; msg?: string; time?: string };
      if (
        o.level === 'info' &&
        !/lease|circuit|PostgreSQL|Redis|signal|shutting|stopped|started|starting|re-armed/.test(o.msg ?? '')
      )
        return;
      const msg = `${o.level}: ${(o.msg ?? '').replace(/trade \S+:/, 'trade …:').slice(0, 90)}`;
      this.bump(msg);
      const list = this.byPid.get(pid) ?? [];
      list.push({ t: Date.parse(o.time ?? '') || Date.now(), msg: o.msg ?? '' });
      this.byPid.set(pid, list);
    } catch {
      // a partial line of a killed process
    }
  }

  private bump(msg: string): void {
    this.counts[msg] = (this.counts[msg] ?? 0) + 1;
  }

  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => new Promise<void>((r) => f.end(r))));
  }
}

// ---------------------------------------------------------------------------
// Redis connections of one process

/** Local ports of `pid`'s TCP connections to 127.0.0.1:`port` (from /proc; Linux only). */
export function localPortsTo(pid: number, port: number): Set<number> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const ports = new Set<number>();
  for (const table of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const row of text.split('\n').slice(1)) {
      const f = row.trim().split(/\s+/);
      if (f.length < 10 || !inodes.has(f[9]!)) continue;
      const local = parseInt(f[1]!.split(':')[1]!, 16);
      const remote = parseInt(f[2]!.split(':')[1]!, 16);
      if (remote === port) ports.add(local);
    }
  }
  return ports;
}

/** CLIENT KILL ID of every connection of process `pid`; returns the killed client ids. */
async function cutRedisConnections(admin: IORedis, pid: number, redisPort: number): Promise<number[]> {
  const ports = localPortsTo(pid, redisPort);
  const list = (await admin.client('LIST')) as string;
  const ids: number[] = [];
  for (const line of list.split('\n')) {
    const id = /(?:^|\s)id=(\d+)/.exec(line)?.[1];
    const addrPort = /(?:^|\s)addr=[^\s]*:(\d+)/.exec(line)?.[1];
    if (id && addrPort && ports.has(Number(addrPort))) ids.push(Number(id));
  }
  for (const id of ids) await admin.client('KILL', 'ID', String(id));
  return ids;
}

// ---------------------------------------------------------------------------
// Posting

interface PostState {
  seqs: Map<string, number>;
  stats: ChaosReport['posting'];
  problems: string[];
}

interface BatchResult {
  index: number;
  tradeId?: string;
  status: string;
  seq?: number;
}

class Poster {
  readonly state: PostState = {
    seqs: new Map(),
    stats: {
      requests: 0,
      byStatus: {},
      timeouts: 0,
      connectionErrors: 0,
      abortedByClient: 0,
      retried: 0,
      seqFromRetryDuplicate: 0,
      maxRetriesOfOneRequest: 0,
    },
    problems: [],
  };
  /** Trades acknowledged so far (distinct), for progress. */
  accepted = 0;

  constructor(
    private readonly api: string,
    private readonly timeoutMs: number,
    private readonly abortRate: number,
    private readonly random: () => number,
    private readonly giveUpMs = 180_000,
  ) {}

  private record(tradeId: string, seq: number, viaRetryDuplicate: boolean): void {
    const known = this.state.seqs.get(tradeId);
    if (known === undefined) {
      this.state.seqs.set(tradeId, seq);
      this.accepted++;
      if (viaRetryDuplicate) this.state.stats.seqFromRetryDuplicate++;
    } else if (known !== seq) {
      this.state.problems.push(`tradeId ${tradeId} was answered seq ${known}, later seq ${seq}`);
    }
  }

  /** POSTs `body` until it gets a final answer; returns the parsed JSON and status. */
  private async send(
    path: string,
    body: string,
  ): Promise<{ status: number; json: unknown; retried: boolean }> {
    const started = Date.now();
    let retries = 0;
    const stats = this.state.stats;
    for (;;) {
      stats.requests++;
      let status: number;
      let json: unknown;
      let retryAfter: string | null = null;
      const abort = retries === 0 && this.random() < this.abortRate ? new AbortController() : undefined;
      const abortTimer = abort
        ? setTimeout(() => abort.abort(), 1 + Math.floor(this.random() * 30))
        : undefined;
      try {
        const timeout = AbortSignal.timeout(this.timeoutMs);
        const res = await fetch(this.api + path, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
          signal: abort ? AbortSignal.any([timeout, abort.signal]) : timeout,
        });
        status = res.status;
        retryAfter = res.headers.get('retry-after');
        json = await res.json();
      } catch (err) {
        const name = (err as Error).name;
        if (abort?.signal.aborted) stats.abortedByClient++;
        else if (name === 'TimeoutError' || name === 'AbortError') stats.timeouts++;
        else stats.connectionErrors++;
        status = 0;
      } finally {
        clearTimeout(abortTimer);
      }
      if (status !== 0) stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
      const retryable = status === 0 || status === 429 || status === 503 || status === 500;
      if (!retryable) {
        stats.maxRetriesOfOneRequest = Math.max(stats.maxRetriesOfOneRequest, retries);
        return { status, json, retried: retries > 0 };
      }
      if ((status === 429 || status === 503) && retryAfter === null) {
        this.state.problems.push(`${status} without Retry-After on ${path}`);
      }
      if (status === 500) this.state.problems.push(`500 on ${path}: ${JSON.stringify(json).slice(0, 200)}`);
      if (Date.now() - started > this.giveUpMs) {
        this.state.problems.push(
          `gave up on a ${path} request after ${retries} retries (last status ${status})`,
        );
        return { status, json, retried: true };
      }
      retries++;
      stats.retried++;
      // Retry-After is in seconds; honour it, capped so that a short outage is not overslept.
      const wait = status === 0 ? 200 : Math.min(2000, 1000 * Number(retryAfter ?? 1));
      await sleep(wait);
    }
  }

  async postBatch(trades: Record<string, unknown>[]): Promise<void> {
    const { status, json, retried } = await this.send('/v1/trades/batch', JSON.stringify({ trades }));
    if (status !== 200 && status !== 202) {
      this.state.problems.push(`batch answered ${status}: ${JSON.stringify(json).slice(0, 300)}`);
      return;
    }
    const results = (json as { results: BatchResult[] }).results;
    if (results.length !== trades.length)
      this.state.problems.push(`batch of ${trades.length} answered ${results.length} results`);
    for (const r of results) {
      if ((r.status === 'queued' || r.status === 'duplicate') && r.tradeId && typeof r.seq === 'number') {
        this.record(r.tradeId, r.seq, retried && r.status === 'duplicate');
      } else {
        this.state.problems.push(
          `batch item ${r.index} (${r.tradeId}): ${r.status} ${JSON.stringify(r).slice(0, 200)}`,
        );
      }
    }
  }

  async postSingle(trade: Record<string, unknown>): Promise<void> {
    const { status, json, retried } = await this.send('/v1/trades', JSON.stringify(trade));
    const body = json as { seq?: number; duplicate?: boolean; tradeId?: string };
    if ((status === 202 || status === 200) && typeof body.seq === 'number') {
      this.record(trade.tradeId as string, body.seq, retried && status === 200);
    } else {
      this.state.problems.push(
        `single ${String(trade.tradeId)} answered ${status}: ${JSON.stringify(json).slice(0, 200)}`,
      );
    }
  }
}

// ---------------------------------------------------------------------------
// The run

interface Env {
  redis: RedisServer;
  pg: PostgresServer;
  databaseUrl: string;
  fleet: Fleet;
  admin: IORedis;
  logs: LogCollector;
}

export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const log = opts.log;
  const t0 = Date.now();
  mkdirSync(opts.workDir, { recursive: true });
  const random = seededRandom(opts.seed);
  const problems: string[] = [];

  const { trades } = generateTrades(opts.trades, opts.partitions, opts.seed, 'C', {
    distribution: { zipf: opts.zipf },
    duplicateRate: opts.duplicateRate,
    chainRate: opts.chainRate,
  });
  const perPk = new Map<string, number>();
  const uniqueIds = new Set<string>();
  for (const t of trades) {
    uniqueIds.add(t.tradeId as string);
    const pk = partitionKey(t.accountId as string, t.bookId as string, t.securityId as string);
    perPk.set(pk, (perPk.get(pk) ?? 0) + 1);
  }
  log(
    `generated ${trades.length} messages (${uniqueIds.size} unique trades) over ${perPk.size} partitions; hottest has ${Math.max(...perPk.values())}`,
  );

  const [redis, pg] = await Promise.all([
    startRedis({ appendonly: true, appendfsync: 'always' }),
    startPostgres(),
  ]);
  let env: Env | undefined;
  try {
    const admin0 = new Client({ connectionString: pg.url });
    admin0.on('error', () => undefined);
    await admin0.connect();
    await admin0.query('create database chaos');
    await admin0.end();
    const databaseUrl = pg.url.replace(/\/postgres$/, '/chaos');
    const logs = new LogCollector(opts.workDir);
    const fleet = await startFleet(
      databaseUrl,
      0,
      {
        LOCK_DURATION_MS: String(opts.lockMs),
        STALLED_INTERVAL_MS: String(opts.stalledMs),
        SHUTDOWN_TIMEOUT_MS: '5000',
        MAX_BACKLOG: String(opts.maxBacklog),
      },
      {
        redisUrl: redis.url,
        namespaceLabel: 'chaos',
        producerEnv: { LOG_LEVEL: 'warn' },
        // Several workers on one host: no fixed metrics port (older builds ignore the variable).
        workerEnv: { LOG_LEVEL: 'debug', METRICS_PORT: '0' },
      },
    );
    logs.attach(fleet.producer, 'producer', false);
    const admin = new IORedis(redis.url, { maxRetriesPerRequest: null, lazyConnect: false });
    admin.on('error', () => undefined);
    env = { redis, pg, databaseUrl, fleet, admin, logs };
    const report = await runWithFleet(env, opts, trades, perPk, uniqueIds.size, random, problems, t0);
    return report;
  } finally {
    await stopAll(10_000).catch(() => undefined);
    await env?.admin.quit().catch(() => env?.admin.disconnect());
    await env?.logs.close();
    await Promise.allSettled([redis.stop(), pg.stop()]);
  }
}

async function runWithFleet(
  env: Env,
  opts: ChaosOptions,
  trades: Record<string, unknown>[],
  perPk: Map<string, number>,
  unique: number,
  random: () => number,
  problems: string[],
  t0: number,
): Promise<ChaosReport> {
  const { fleet, logs, admin } = env;
  const log = opts.log;

  // --- workers
  const workers: ChildProcess[] = [];
  const stopped = new Set<number>();
  const killedPids = new Set<number>();
  const startedAt = new Map<number, number>();
  const startWorker = () => {
    const w = spawnCli(['worker'], fleet.env);
    startedAt.set(w.pid!, Date.now());
    logs.attach(w, 'worker', true);
    workers.push(w);
    return w;
  };
  for (let i = 0; i < opts.workers; i++) startWorker();
  const alive = () =>
    workers.filter((w) => w.exitCode === null && w.signalCode === null && !killedPids.has(w.pid!));

  // --- posting units: batches, some of them posted one trade at a time
  const units: { singles: boolean; trades: Record<string, unknown>[] }[] = [];
  for (let i = 0, n = 0; i < trades.length; i += opts.postBatch, n++) {
    units.push({
      singles: opts.singlesEvery > 0 && n % opts.singlesEvery === opts.singlesEvery - 1,
      trades: trades.slice(i, i + opts.postBatch),
    });
  }
  const poster = new Poster(fleet.api, opts.requestTimeoutMs, opts.abortRate, random);
  const postStart = Date.now();
  const since = () => Date.now() - postStart;
  const postMs = opts.postSeconds * 1000;
  const interval = postMs / units.length;
  let nextUnit = 0;
  const postLoop = async () => {
    for (;;) {
      const i = nextUnit++;
      if (i >= units.length) return;
      const due = postStart + i * interval;
      if (Date.now() < due) await sleep(due - Date.now());
      const u = units[i]!;
      if (u.singles) for (const t of u.trades) await poster.postSingle(t);
      else await poster.postBatch(u.trades);
    }
  };
  const posting = Promise.all(Array.from({ length: opts.posters }, postLoop));

  // --- progress
  const progress = setInterval(() => {
    void readSignalsSafe(admin, fleet).then((s) =>
      log(
        `t=${(since() / 1000).toFixed(0)}s accepted ${poster.accepted}/${unique} backlog ${s?.backlog ?? '?'} pending ${s?.pendingPartitions ?? '?'} committed batches ${logs.batches.length} workers ${alive().length}${stopped.size ? ' (1 stopped)' : ''}`,
      ),
    );
  }, 10_000);

  // --- faults
  const faults: FaultRecord[] = [];
  /**
   * Partitions whose latest commit (within two leases) was by `pid` and that
   * have trades accepted past it, with their last accepted seq (see FaultRecord.affected).
   */
  const waitingOn = async (pid: number): Promise<FaultRecord['affected']> => {
    const now = Date.now();
    const latest = new Map<string, AppliedBatch>();
    for (let i = logs.batches.length - 1; i >= 0; i--) {
      const b = logs.batches[i]!;
      if (now - b.t > opts.lockMs * 2) break;
      if (!latest.has(b.pk)) latest.set(b.pk, b);
    }
    const held = [...latest.values()].filter((b) => b.pid === pid);
    if (held.length === 0) return [];
    for (let attempt = 0; attempt < 10; attempt++) {
      const seqNow = await withTimeout(admin.hmget(fleet.keys.seqs, ...held.map((b) => b.pk)), 1000).catch(
        () => undefined,
      );
      if (seqNow) {
        return held
          .map((b, i) => ({ pk: b.pk, upTo: Number(seqNow[i] ?? 0), committed: b.positionLastSeq }))
          .filter((x) => x.upTo > x.committed)
          .map(({ pk, upTo }) => ({ pk, upTo }));
      }
      await sleep(500); // Redis is restarting
    }
    return [];
  };
  /**
   * The worker that committed last on the partition with the most commits in
   * the last two seconds (the hottest partition's current holder, most
   * likely with a batch in flight), if it is running.
   */
  const holderOfHottest = () => {
    const now = Date.now();
    const commits = new Map<string, number>();
    const newest = new Map<string, AppliedBatch>();
    for (let i = logs.batches.length - 1; i >= 0 && now - logs.batches[i]!.t < 2000; i--) {
      const b = logs.batches[i]!;
      commits.set(b.pk, (commits.get(b.pk) ?? 0) + 1);
      if (!newest.has(b.pk)) newest.set(b.pk, b);
    }
    const hottest = [...commits].sort((a, b) => b[1] - a[1])[0]?.[0];
    const pid = hottest === undefined ? undefined : newest.get(hottest)!.pid;
    return alive().find((w) => w.pid === pid && !stopped.has(w.pid!));
  };
  /**
   * SIGSTOPs the next worker to commit a batch of several trades (it is
   * draining a backlog, and about to ack and fetch the next batch) the moment
   * its line arrives, within `ms`; returns it with the partition it holds.
   */
  const stopOnBigCommit = (ms: number) =>
    new Promise<{ worker: ChildProcess; pk: string } | undefined>((resolve) => {
      const timer = setTimeout(() => {
        logs.onBatch = undefined;
        resolve(undefined);
      }, ms);
      logs.onBatch = (b) => {
        const worker = alive().find((x) => x.pid === b.pid && !stopped.has(b.pid));
        if (!worker || b.lastSeq - b.firstSeq < 2) return;
        worker.kill('SIGSTOP');
        clearTimeout(timer);
        logs.onBatch = undefined;
        resolve({ worker, pk: b.pk });
      };
    });
  /** A random running worker, not the stopped one; with `settled`, one up for 5 s that has committed. */
  const pickVictim = (settled = false) => {
    const committed = settled ? new Set(logs.batches.map((b) => b.pid)) : undefined;
    const candidates = alive().filter(
      (w) =>
        !stopped.has(w.pid!) &&
        (!committed || (committed.has(w.pid!) && Date.now() - (startedAt.get(w.pid!) ?? 0) > 5000)),
    );
    return candidates[Math.floor(random() * candidates.length)];
  };

  // The SIGSTOP waits (up to 10 s) for a worker caught draining a backlog (see stopOnBigCommit).
  const oneOffs: { at: number; window: number; kind: FaultKind }[] = [
    { at: 0.2 * postMs, window: 3000, kind: 'redis-conn-cut' },
    { at: 0.35 * postMs, window: opts.redisDownMs + 5000, kind: 'redis-restart' },
    { at: 0.5 * postMs, window: opts.stopMs + 12_000, kind: 'worker-sigstop' },
    { at: 0.75 * postMs, window: opts.pgDownMs + 8000, kind: 'postgres-restart' },
  ];
  const schedule: { at: number; kind: FaultKind }[] = oneOffs.map(({ at, kind }) => ({ at, kind }));
  // Kills go on through the other faults (a worker may start while Redis or
  // PostgreSQL is down), but not within a second of one starting, nor during the SIGSTOP.
  for (let at = 0.05 * postMs; at < postMs; at += opts.killEveryMs * (0.75 + 0.5 * random())) {
    if (oneOffs.some((o) => at > o.at - 1000 && at < o.at + (o.kind === 'worker-sigstop' ? o.window : 1000)))
      continue;
    schedule.push({ at, kind: 'worker-sigkill' });
  }
  schedule.sort((a, b) => a.at - b.at);

  const inject = async (kind: FaultKind): Promise<FaultRecord> => {
    const at = since();
    const rec: FaultRecord = { kind, at, healedAt: at, detail: '', affected: [], recoveryMs: null };
    switch (kind) {
      case 'worker-sigkill': {
        const victim = pickVictim();
        if (!victim) {
          rec.detail = 'no worker to kill';
          break;
        }
        rec.victimPid = victim.pid!;
        rec.affected = await waitingOn(victim.pid!);
        killedPids.add(victim.pid!);
        victim.kill('SIGKILL');
        const fresh = startWorker();
        rec.detail = `SIGKILL ${victim.pid}, started ${fresh.pid}`;
        break;
      }
      case 'worker-sigstop': {
        const caught = await stopOnBigCommit(10_000);
        const victim = caught?.worker ?? holderOfHottest() ?? pickVictim();
        if (!victim) break;
        if (!caught) victim.kill('SIGSTOP');
        rec.at = since();
        stopped.add(victim.pid!);
        rec.victimPid = victim.pid!;
        rec.affected = await waitingOn(victim.pid!);
        // The partition it was caught draining is held whatever its seqs say.
        if (caught)
          rec.affected = [
            { pk: caught.pk, upTo: Number.MAX_SAFE_INTEGER },
            ...rec.affected.filter((a) => a.pk !== caught.pk),
          ];
        await sleep(opts.stopMs - (since() - rec.at));
        victim.kill('SIGCONT');
        stopped.delete(victim.pid!);
        rec.healedAt = since();
        rec.detail = `SIGSTOP ${victim.pid}${caught ? ' as it committed a batch of its backlog' : ''} for ${opts.stopMs} ms (lease ${opts.lockMs} ms), then SIGCONT`;
        break;
      }
      case 'redis-conn-cut': {
        const victim = holderOfHottest() ?? pickVictim(true) ?? pickVictim();
        if (!victim) break;
        rec.victimPid = victim.pid!;
        rec.affected = await waitingOn(victim.pid!);
        const ids = await cutRedisConnections(admin, victim.pid!, env.redis.port);
        rec.detail = `CLIENT KILL ID of ${ids.length} connection(s) of worker ${victim.pid}`;
        if (ids.length === 0)
          problems.push(`redis-conn-cut: found no Redis connection of worker ${victim.pid}`);
        break;
      }
      case 'redis-restart': {
        if (opts.redisFault === 'crash') env.redis.kill('SIGKILL');
        else env.redis.kill('SIGTERM');
        await sleep(opts.redisDownMs);
        await env.redis.restart();
        rec.healedAt = since();
        rec.detail = `${opts.redisFault === 'crash' ? 'SIGKILL' : 'SIGTERM'} redis-server, down ${opts.redisDownMs} ms, restarted on its AOF (appendfsync always) in ${rec.healedAt - at - opts.redisDownMs} ms`;
        break;
      }
      case 'postgres-restart': {
        env.pg.kill('SIGKILL');
        await sleep(opts.pgDownMs);
        await env.pg.restart();
        rec.healedAt = since();
        rec.detail = `SIGKILL postmaster, down ${opts.pgDownMs} ms, crash recovery and restart in ${rec.healedAt - at - opts.pgDownMs} ms`;
        break;
      }
    }
    log(
      `t=${(rec.at / 1000).toFixed(1)}s fault ${kind}: ${rec.detail}${rec.affected.length ? ` (${rec.affected.length} partitions waiting on it)` : ''}`,
    );
    return rec;
  };

  const faulting = (async () => {
    for (const s of schedule) {
      const wait = s.at - since();
      if (wait > 0) await sleep(wait);
      try {
        faults.push(await inject(s.kind));
      } catch (err) {
        problems.push(`injecting ${s.kind} failed: ${(err as Error).stack ?? String(err)}`);
      }
    }
  })();

  // Keep the worker count while posting: a worker that died on its own is a finding, and is replaced.
  const watchdog = setInterval(() => {
    for (const w of workers) {
      if (killedPids.has(w.pid!) || (w.exitCode === null && w.signalCode === null)) continue;
      killedPids.add(w.pid!);
      problems.push(
        `worker ${w.pid} exited on its own (${w.exitCode ?? w.signalCode}): ${outputOf(w).slice(-1500)}`,
      );
      startWorker();
    }
  }, 1000);

  await Promise.all([posting, faulting]);
  const postEnd = since();
  log(
    `posting done in ${(postEnd / 1000).toFixed(1)}s: ${poster.accepted} trades accepted; ${faults.length} faults injected`,
  );

  // --- drain
  const drainStart = Date.now();
  let halted = 0;
  for (;;) {
    const s = await readSignalsSafe(admin, fleet);
    if (s && s.backlog === 0) break;
    if (s && s.haltedPartitions > 0 && s.backlog > 0 && s.pendingPartitions === 0) {
      halted = s.haltedPartitions;
      const reasons = await admin.hgetall(fleet.keys.halted);
      problems.push(`${halted} partition(s) halted: ${JSON.stringify(reasons).slice(0, 1000)}`);
      break;
    }
    if (Date.now() - drainStart > opts.drainTimeoutMs) {
      problems.push(`the backlog did not drain within ${opts.drainTimeoutMs} ms: ${JSON.stringify(s)}`);
      break;
    }
    await sleep(250);
  }
  clearInterval(watchdog);
  clearInterval(progress);
  const drainMs = Date.now() - drainStart;
  log(`drained in ${(drainMs / 1000).toFixed(1)}s`);
  const finalSignals = await readSignalsSafe(admin, fleet);
  halted = finalSignals?.haltedPartitions ?? halted;

  // --- checks
  const checkStart = Date.now();
  problems.push(...poster.state.problems.slice(0, 20));
  const seqs = poster.state.seqs;
  for (const id of new Set(trades.map((t) => t.tradeId as string))) {
    if (!seqs.has(id)) problems.push(`trade ${id} was never acknowledged by the producer`);
  }

  const api = await checkApi(fleet.api, env.databaseUrl, trades, seqs, opts.apiSamples);
  problems.push(...api.problems);
  await stopAll(10_000);
  const positions = await checkPositionsAgainstFold(env.databaseUrl, trades, seqs, 20);
  problems.push(...positions.problems);
  const db = await checkDatabase(env.databaseUrl, trades, seqs, positions.expected);
  problems.push(...db.problems);
  const logCheck = checkLogs(logs.batches, db.lastSeqs, killedPids.size);
  problems.push(...logCheck.problems);

  // Recovery times, from the commits.
  const sorted = [...logs.batches].sort((a, b) => a.t - b.t);
  for (const f of faults) f.recoveryMs = recovery(f, sorted, postStart);

  // The zombie: what it said after SIGCONT.
  let zombieFenced = 0;
  for (const f of faults.filter((x) => x.kind === 'worker-sigstop' && x.victimPid)) {
    const lines = logs.byPid.get(f.victimPid!) ?? [];
    zombieFenced += lines.filter(
      (l) => l.t >= postStart + f.healedAt - 50 && /lease lost|refused by PostgreSQL/.test(l.msg),
    ).length;
  }

  const faultCounts = Object.fromEntries(
    FAULT_KINDS.map((k) => [k, faults.filter((f) => f.kind === k).length]),
  ) as Record<FaultKind, number>;
  for (const k of FAULT_KINDS) if (faultCounts[k] === 0) problems.push(`no ${k} fault was injected`);

  const { log: _log, ...options } = opts;
  const report: ChaosReport = {
    options,
    startedAt: new Date(t0).toISOString(),
    durations: { postMs: postEnd, drainMs, checkMs: Date.now() - checkStart, totalMs: Date.now() - t0 },
    trades: {
      messages: trades.length,
      unique,
      generatedDuplicates: trades.length - unique,
      partitionsUsed: perPk.size,
      hottestPartitionTrades: Math.max(...perPk.values()),
      accepted: seqs.size,
      applied: db.applied,
      deadLettered: db.deadLettered,
      deadLetterReasons: db.deadLetterReasons,
    },
    posting: poster.state.stats,
    faults,
    faultCounts,
    checks: {
      lost: db.lost,
      duplicated: db.duplicated,
      reordered: db.reordered,
      unexpected: db.unexpected,
      positionMismatches: positions.problems.length,
      deadLettersWithoutReason: db.withoutReason,
      deadLetterMismatches: db.deadLetterMismatches,
      apiMismatches: api.problems.length,
      apiChecked: api.checked,
      logBatches: logs.batches.length,
      logOverlaps: logCheck.overlaps,
      logEpochRegressions: logCheck.epochRegressions,
      logGaps: logCheck.gaps,
      zombieFenced,
    },
    workerLog: logs.counts,
    haltedPartitions: halted,
    problems: problems.slice(0, 50),
  };
  return report;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function readSignalsSafe(admin: IORedis, fleet: Fleet) {
  return withTimeout(readSignals(admin, fleet.keys), 2000).catch(() => undefined);
}

/** See FaultRecord.recoveryMs. `batches` sorted by time. */
function recovery(f: FaultRecord, batches: AppliedBatch[], postStart: number): number | null {
  const start = postStart + f.at;
  if (f.kind === 'redis-restart' || f.kind === 'postgres-restart') {
    const healed = postStart + f.healedAt;
    const next = batches.find((b) => b.t > healed);
    return next ? next.t - start : null;
  }
  if (f.affected.length === 0) {
    // A cut connection with nothing waiting on it: until the victim commits again (it reconnected).
    if (f.kind !== 'redis-conn-cut') return null;
    const next = batches.find((b) => b.t > start && b.pid === f.victimPid);
    return next ? next.t - start : null;
  }
  let worst: number | null = null;
  for (const { pk, upTo } of f.affected) {
    // The first commit after the fault of a trade that was waiting at the fault. The victim
    // itself counts only for a cut connection (it reconnects); a killed or stopped one is replaced.
    const next = batches.find(
      (b) =>
        b.t > start &&
        b.pk === pk &&
        b.firstSeq + b.skipped <= Math.min(upTo, b.positionLastSeq) &&
        (f.kind === 'redis-conn-cut' || b.pid !== f.victimPid),
    );
    if (next) worst = Math.max(worst ?? 0, next.t - start);
  }
  return worst;
}

// ---------------------------------------------------------------------------
// Checks

async function checkApi(
  api: string,
  databaseUrl: string,
  trades: Record<string, unknown>[],
  seqs: Map<string, number>,
  samples: number,
): Promise<{ checked: number; problems: string[] }> {
  const problems: string[] = [];
  const db = new Client({ connectionString: databaseUrl });
  // A server shutdown must not crash the run with an unhandled 'error' event; the query fails instead.
  db.on('error', () => undefined);
  await db.connect();
  let checked = 0;
  try {
    const positions = (
      await db.query<{
        account_id: string;
        book_id: string;
        security_id: string;
        last_seq: string;
        trade_count: string;
        digest: string;
        net_quantity: string;
      }>(
        'select account_id, book_id, security_id, last_seq, trade_count, digest, net_quantity from positions order by last_seq desc limit $1',
        [samples],
      )
    ).rows;
    for (const p of positions) {
      const res = await fetch(
        `${api}/v1/positions/${encodeURIComponent(p.account_id)}/${encodeURIComponent(p.book_id)}/${encodeURIComponent(p.security_id)}`,
      );
      const body = (await res.json()) as {
        lastSeq: number;
        tradeCount: number;
        digest: string;
        netQuantity: string;
      };
      checked++;
      const got = {
        lastSeq: body.lastSeq,
        tradeCount: body.tradeCount,
        digest: body.digest,
        net: canonicalDecimalString(body.netQuantity ?? '0'),
      };
      const want = {
        lastSeq: Number(p.last_seq),
        tradeCount: Number(p.trade_count),
        digest: p.digest,
        net: canonicalDecimalString(p.net_quantity),
      };
      if (JSON.stringify(got) !== JSON.stringify(want))
        problems.push(
          `API position ${p.security_id}: ${JSON.stringify(got)} vs database ${JSON.stringify(want)}`,
        );
    }
    const dead = (
      await db.query<{ trade_id: string; seq: string }>('select trade_id, seq from dead_letters limit $1', [
        samples,
      ])
    ).rows;
    const deadIds = new Set(dead.map((d) => d.trade_id));
    const step = Math.max(1, Math.floor(trades.length / samples));
    const ids = new Set<string>();
    for (let i = 0; i < trades.length; i += step) ids.add(trades[i]!.tradeId as string);
    for (const id of [...ids, ...deadIds]) {
      const res = await fetch(`${api}/v1/trades/${encodeURIComponent(id)}`);
      const body = (await res.json()) as { state?: string; seq?: number; reasonCode?: string };
      checked++;
      const wantState = deadIds.has(id) ? 'dead_lettered' : undefined;
      if (
        res.status !== 200 ||
        body.seq !== seqs.get(id) ||
        (wantState && body.state !== wantState) ||
        (body.state !== 'applied' && body.state !== 'dead_lettered')
      ) {
        problems.push(
          `API trade ${id}: ${res.status} ${JSON.stringify(body).slice(0, 200)} (accepted at seq ${seqs.get(id)})`,
        );
      }
      if (body.state === 'dead_lettered' && !body.reasonCode)
        problems.push(`API trade ${id}: dead-lettered without a reason code`);
    }
  } finally {
    await db.end();
  }
  return { checked, problems: problems.slice(0, 20) };
}

interface DbCheck {
  applied: number;
  deadLettered: number;
  deadLetterReasons: Record<string, number>;
  lost: number;
  duplicated: number;
  reordered: number;
  unexpected: number;
  withoutReason: number;
  deadLetterMismatches: number;
  lastSeqs: Map<string, number>;
  problems: string[];
}

/**
 * Every accepted trade applied or dead-lettered exactly once, at the seq the
 * producer gave it: (partition, seq) pairs of trades ∪ dead_letters are exactly
 * 1..n per partition, each holding the tradeId accepted at that seq, and no
 * tradeId twice. Dead letters carry a reason, and are the messages the fold refuses.
 */
async function checkDatabase(
  databaseUrl: string,
  trades: Record<string, unknown>[],
  seqs: Map<string, number>,
  expected: Map<string, ExpectedPartition>,
): Promise<DbCheck> {
  const problems: string[] = [];
  const expectedAt = new Map<string, string>(); // "pk\0seq" -> tradeId
  const pkOf = new Map<string, string>();
  for (const t of trades) {
    const id = t.tradeId as string;
    const seq = seqs.get(id);
    if (seq === undefined || pkOf.has(id)) continue;
    const pk = partitionKey(t.accountId as string, t.bookId as string, t.securityId as string);
    pkOf.set(id, pk);
    const key = `${pk}\0${seq}`;
    const other = expectedAt.get(key);
    if (other !== undefined && other !== id)
      problems.push(`the producer gave seq ${seq} of ${pk} to both ${other} and ${id}`);
    expectedAt.set(key, id);
  }
  const db = new Client({ connectionString: databaseUrl });
  // A server shutdown must not crash the run with an unhandled 'error' event; the query fails instead.
  db.on('error', () => undefined);
  await db.connect();
  try {
    const applied = (
      await db.query<{ trade_id: string; partition_key: string; seq: string }>(
        'select trade_id, partition_key, seq from trades',
      )
    ).rows;
    const dead = (
      await db.query<{
        trade_id: string;
        partition_key: string;
        seq: string;
        reason_code: string;
        reason: string;
      }>('select trade_id, partition_key, seq, reason_code, reason from dead_letters')
    ).rows;
    const positions = (
      await db.query<{ partition_key: string; last_seq: string }>(
        'select partition_key, last_seq from positions',
      )
    ).rows;
    const lastSeqs = new Map(positions.map((p) => [p.partition_key, Number(p.last_seq)]));

    const seenAt = new Set<string>();
    const seenId = new Map<string, number>();
    let duplicated = 0;
    let reordered = 0;
    let unexpected = 0;
    const note = (msg: string) => {
      if (problems.length < 40) problems.push(msg);
    };
    for (const [rows, table] of [
      [applied, 'trades'],
      [dead, 'dead_letters'],
    ] as const) {
      for (const r of rows) {
        const key = `${r.partition_key}\0${r.seq}`;
        if (seenAt.has(key)) {
          duplicated++;
          note(`${table}: seq ${r.seq} of ${r.partition_key} holds a second row (${r.trade_id})`);
        }
        seenAt.add(key);
        const n = (seenId.get(r.trade_id) ?? 0) + 1;
        seenId.set(r.trade_id, n);
        if (n > 1) {
          duplicated++;
          note(`${table}: trade ${r.trade_id} recorded ${n} times`);
        }
        const want = expectedAt.get(key);
        if (want === undefined) {
          const acceptedSeq = seqs.get(r.trade_id);
          if (acceptedSeq === undefined) {
            unexpected++;
            note(
              `${table}: ${r.trade_id} at seq ${r.seq} of ${r.partition_key} was never acknowledged by the producer`,
            );
          } else {
            reordered++;
            note(
              `${table}: ${r.trade_id} at seq ${r.seq} of ${r.partition_key}, accepted at seq ${acceptedSeq}`,
            );
          }
        } else if (want !== r.trade_id) {
          reordered++;
          note(
            `${table}: seq ${r.seq} of ${r.partition_key} holds ${r.trade_id}, accepted there was ${want}`,
          );
        }
      }
    }
    let lost = 0;
    for (const [key, id] of expectedAt) {
      if (!seenAt.has(key)) {
        lost++;
        note(
          `lost: ${id} (seq ${key.split('\0')[1]} of ${key.split('\0')[0]}) is neither applied nor dead-lettered`,
        );
      }
    }
    for (const [pk, last] of lastSeqs) {
      let n = 0;
      for (let s = 1; s <= last; s++) if (seenAt.has(`${pk}\0${s}`)) n++;
      if (n !== last) note(`${pk}: last_seq ${last} but ${n} of seqs 1..${last} are recorded`);
    }

    const withoutReason = dead.filter((d) => !d.reason_code || !d.reason || d.reason.trim() === '').length;
    if (withoutReason > 0) note(`${withoutReason} dead letters without a reason`);
    const deadLetterReasons: Record<string, number> = {};
    for (const d of dead) deadLetterReasons[d.reason_code] = (deadLetterReasons[d.reason_code] ?? 0) + 1;

    // The dead letters are exactly the messages the fold refuses, with the same codes.
    const wantDead = new Map<string, string>();
    for (const e of expected.values()) for (const r of e.rejections) wantDead.set(r.tradeId, r.code);
    let deadLetterMismatches = 0;
    const gotDead = new Map(dead.map((d) => [d.trade_id, d.reason_code]));
    for (const [id, code] of wantDead) {
      if (gotDead.get(id) !== code) {
        deadLetterMismatches++;
        note(`dead letter ${id}: expected ${code}, got ${gotDead.get(id) ?? 'none'}`);
      }
    }
    for (const [id, code] of gotDead) {
      if (!wantDead.has(id)) {
        deadLetterMismatches++;
        note(`dead letter ${id} (${code}) the fold does not refuse`);
      }
    }
    return {
      applied: applied.length,
      deadLettered: dead.length,
      deadLetterReasons,
      lost,
      duplicated,
      reordered,
      unexpected,
      withoutReason,
      deadLetterMismatches,
      lastSeqs,
      problems,
    };
  } finally {
    await db.end();
  }
}

/**
 * From the workers' 'applied batch' lines: per partition, the committed seq
 * ranges ([firstSeq + skipped, positionLastSeq] of each line) must not
 * overlap and their epochs must not decrease in seq order. A range missing
 * between two logged ones (a gap) is a commit whose line died with a SIGKILLed
 * worker (pino writes asynchronously); the database check covers its seqs.
 */
function checkLogs(
  batches: AppliedBatch[],
  lastSeqs: Map<string, number>,
  kills: number,
): { overlaps: number; epochRegressions: number; gaps: number; problems: string[] } {
  const problems: string[] = [];
  const byPk = new Map<string, { from: number; to: number; epoch: number; pid: number }[]>();
  for (const b of batches) {
    const from = b.firstSeq + b.skipped;
    if (b.positionLastSeq < from) continue; // nothing committed (a redelivery)
    const list = byPk.get(b.pk) ?? [];
    list.push({ from, to: b.positionLastSeq, epoch: b.epoch, pid: b.pid });
    byPk.set(b.pk, list);
  }
  let overlaps = 0;
  let epochRegressions = 0;
  let gaps = 0;
  for (const [pk, list] of byPk) {
    list.sort((a, b) => a.from - b.from || a.to - b.to);
    let prevTo = 0;
    let prevEpoch = 0;
    for (const r of list) {
      if (r.from <= prevTo) {
        overlaps++;
        if (problems.length < 20)
          problems.push(
            `${pk}: seqs ${r.from}..${r.to} committed by pid ${r.pid} (epoch ${r.epoch}) overlap a commit up to ${prevTo}`,
          );
      } else if (r.from > prevTo + 1) {
        gaps++;
      }
      if (r.epoch < prevEpoch) {
        epochRegressions++;
        if (problems.length < 20)
          problems.push(
            `${pk}: seqs ${r.from}..${r.to} committed under epoch ${r.epoch} after epoch ${prevEpoch}`,
          );
      }
      prevTo = Math.max(prevTo, r.to);
      prevEpoch = Math.max(prevEpoch, r.epoch);
    }
    const last = lastSeqs.get(pk) ?? 0;
    if (prevTo < last) gaps++;
    // A commit a worker saw succeed that PostgreSQL no longer has: a lost commit.
    if (prevTo > last && problems.length < 20)
      problems.push(
        `${pk}: a worker logged a commit up to seq ${prevTo}, the position's last_seq is ${last}`,
      );
  }
  for (const [pk, last] of lastSeqs) if (!byPk.has(pk) && last > 0) gaps++;
  // A SIGKILL takes at most the lines its worker had not written yet: about one per partition
  // in hand (WORKER_CONCURRENCY, 16); four times that is the bound.
  if (gaps > 0 && kills === 0)
    problems.push(`${gaps} committed ranges have no 'applied batch' line, and no worker was killed`);
  if (gaps > kills * 16 * 4)
    problems.push(
      `${gaps} committed ranges have no 'applied batch' line: more than ${kills} SIGKILLs can explain`,
    );
  return { overlaps, epochRegressions, gaps, problems };
}

// ---------------------------------------------------------------------------
// Summary

const median = (xs: number[]) => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
};

/** The summary as markdown tables (printed by bench/chaos.ts and the test, written to bench/results/chaos.md). */
export function renderSummary(r: ChaosReport): string {
  const c = r.checks;
  const t = r.trades;
  const p = r.posting;
  const o = r.options;
  const ms = (x: number | null) => (x === null ? 'n/a' : `${x}`);
  const lines = [
    `Chaos run of ${r.startedAt}: ${t.messages.toLocaleString('en-US')} trade messages over ${o.partitions.toLocaleString('en-US')} partitions (Zipf s=${o.zipf}), ` +
      `producer + ${o.workers} workers through the CLI, Redis AOF appendfsync always, LOCK_DURATION_MS=${o.lockMs}. ` +
      `Posting ${(r.durations.postMs / 1000).toFixed(1)} s, drain after posting ${(r.durations.drainMs / 1000).toFixed(1)} s, checks ${(r.durations.checkMs / 1000).toFixed(1)} s, total ${(r.durations.totalMs / 1000).toFixed(1)} s.`,
    '',
    '| | |',
    '| --- | --- |',
    `| trade messages posted | ${t.messages} (${t.unique} unique trades, ${t.generatedDuplicates} exact duplicates) |`,
    `| partitions used | ${t.partitionsUsed} (hottest: ${t.hottestPartitionTrades} messages) |`,
    `| accepted (a seq from the producer) | ${t.accepted} |`,
    `| applied | ${t.applied} |`,
    `| dead-lettered, with a reason | ${t.deadLettered} (${
      Object.entries(t.deadLetterReasons)
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ') || 'none'
    }) |`,
    `| **lost** | **${c.lost}** |`,
    `| **duplicated** | **${c.duplicated}** |`,
    `| **reordered** (a trade at another seq than accepted) | **${c.reordered}** |`,
    `| positions differing from the fold (digest included) | ${c.positionMismatches} |`,
    `| dead letters differing from the fold's refusals / without reason | ${c.deadLetterMismatches} / ${c.deadLettersWithoutReason} |`,
    `| unexpected rows (never acknowledged) | ${c.unexpected} |`,
    `| API lookups checked / differing | ${c.apiChecked} / ${c.apiMismatches} |`,
    `| committed batches in worker logs | ${c.logBatches} |`,
    `| overlapping commits on one partition / epoch regressions | ${c.logOverlaps} / ${c.logEpochRegressions} |`,
    `| commits without a log line (died with a SIGKILLed worker) | ${c.logGaps} |`,
    `| zombie (SIGSTOPped) worker fenced after SIGCONT | ${c.zombieFenced} refused batch(es) |`,
    `| halted partitions | ${r.haltedPartitions} |`,
    `| HTTP requests | ${p.requests}: ${Object.entries(p.byStatus)
      .map(([k, v]) => `${k}: ${v}`)
      .join(
        ', ',
      )}; timeouts ${p.timeouts}, dropped connections ${p.connectionErrors}, aborted mid-request by the client on purpose ${p.abortedByClient}; ${p.retried} retries, all with the same payloads (max ${p.maxRetriesOfOneRequest} for one request) |`,
    `| seqs learned from a retry's duplicate answer | ${p.seqFromRetryDuplicate} |`,
    '',
    '| fault | injected | recovery ms (median / max) |',
    '| --- | --- | --- |',
  ];
  for (const k of FAULT_KINDS) {
    const rec = r.faults.filter((f) => f.kind === k && f.recoveryMs !== null).map((f) => f.recoveryMs!);
    lines.push(
      `| ${k} | ${r.faultCounts[k]} | ${rec.length ? `${median(rec)} / ${Math.max(...rec)}` : 'n/a'} |`,
    );
  }
  lines.push(
    '',
    'Recovery = time from the start of the fault until the backlog moved again: for a restart, the first commit after it; for a worker fault, the last of the first re-commits of the partitions that had trades waiting on the victim (n/a when none had; for a cut connection with none, until the victim committed again).',
    '',
    '| t (s) | fault | outage ms | recovery ms | partitions waiting on it | what |',
    '| --- | --- | --- | --- | --- | --- |',
  );
  for (const f of r.faults) {
    lines.push(
      `| ${(f.at / 1000).toFixed(1)} | ${f.kind} | ${f.healedAt - f.at} | ${ms(f.recoveryMs)} | ${f.affected.length} | ${f.detail} |`,
    );
  }
  lines.push('', `Problems: ${r.problems.length === 0 ? 'none' : ''}`);
  for (const pr of r.problems) lines.push(`- ${pr.replace(/\n/g, ' ').slice(0, 500)}`);
  return lines.join('\n') + '\n';
}
