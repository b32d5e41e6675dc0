/**
 * Real Redis and PostgreSQL servers for tests and for `tradefleet dev`, each on a free loopback port with
 * its data in a fresh temporary directory. Never the system instances on
 * 6379/5432.
 *
 * - Binaries: `redis-server` from PATH (or REDIS_SERVER_BIN); `initdb` and
 *   `postgres` from PG_BIN_DIR, else PATH, else the newest /usr/lib/postgresql/<n>/bin.
 * - PostgreSQL refuses to run as root: when this process is root, initdb and
 *   postgres run as the `postgres` user (spawned with its uid/gid, which is what
 *   `runuser -u postgres` does, but leaves us the real postmaster PID).
 * - PostgreSQL runs with fsync=off and full_page_writes=off: fast, and safe for
 *   tests and dev because nothing survives the run. It does NOT survive an OS
 *   crash; restart() after a SIGKILL of the postmaster recovers every commit,
 *   because synchronous_commit stays on (the WAL reaches the kernel before a
 *   commit returns, it is just not fsynced). Do not copy these settings anywhere else.
 * - Every started server is recorded in os.tmpdir()/tradefleet-test-servers-<uid>/ (one
 *   JSON file per server, with the PID of the process that owns it), so
 *   reapLeftoverServers() can kill what a crashed run left behind.
 * - Servers are started in our process group and unref()'d: Ctrl-C reaches them,
 *   and a forgotten one never keeps Jest alive (the next run reaps it).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { Client } from 'pg';

// ---------------------------------------------------------------------------
// Ports

/** A TCP port that was free on 127.0.0.1 a moment ago (bind port 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close((err) => (err ? reject(err) : port ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

// ---------------------------------------------------------------------------
// Registry of started servers

/** Per user: another user's servers are neither ours to kill nor writable for us. */
export const REGISTRY_DIR = path.join(
  os.tmpdir(),
  `tradefleet-test-servers-${typeof process.getuid === 'function' ? process.getuid() : os.userInfo().username}`,
);

type Kind = 'redis' | 'postgres';

interface RegistryEntry {
  kind: Kind;
  pid: number;
  /** The process that started the server; when it is gone, the server is a leftover. */
  ownerPid: number;
  dir: string;
  removeDir: boolean;
  port: number;
  startedAt: string;
}

let registrySeq = 0;

function registryFile(kind: Kind): string {
  fs.mkdirSync(REGISTRY_DIR, { recursive: true });
  return path.join(REGISTRY_DIR, `${kind}-${process.pid}-${++registrySeq}-${Date.now()}.json`);
}

function writeEntry(file: string, entry: RegistryEntry): void {
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(entry));
  fs.renameSync(tmp, file);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The command line of a process, or '' when unknown (so a reused PID is not killed). */
function commandOf(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    try {
      return execFileSync('ps', ['-p', String(pid), '-o', 'command='], { encoding: 'utf8' });
    } catch {
      return '';
    }
  }
}

const COMMAND_PATTERN: Record<Kind, RegExp> = { redis: /redis-server/, postgres: /postgres/ };

/**
 * Kills the servers of runs whose owning process is gone (a crashed or killed Jest,
 * or a finished Jest worker whose test file forgot to stop its server) and removes
 * their temporary directories. With `includeOwn`, also those this process started
 * (global teardown uses it: by then every server still registered was forgotten).
 * Returns what it reaped.
 */
export async function reapLeftoverServers(opts: { includeOwn?: boolean } = {}): Promise<string[]> {
  let files: string[];
  try {
    files = fs.readdirSync(REGISTRY_DIR).filter((f) => f.endsWith('.json'));
  } catch {
    return [];
  }
  const reaped: string[] = [];
  for (const f of files) {
    const file = path.join(REGISTRY_DIR, f);
    let entry: RegistryEntry;
    try {
      entry = JSON.parse(fs.readFileSync(file, 'utf8')) as RegistryEntry;
    } catch {
      fs.rmSync(file, { force: true });
      continue;
    }
    const own = entry.ownerPid === process.pid;
    if (own ? !opts.includeOwn : isAlive(entry.ownerPid)) continue;
    if (entry.pid > 0 && isAlive(entry.pid) && COMMAND_PATTERN[entry.kind].test(commandOf(entry.pid))) {
      // Immediate shutdown for PostgreSQL (it also stops its backends), then SIGKILL.
      safeKill(entry.pid, entry.kind === 'postgres' ? 'SIGQUIT' : 'SIGKILL');
      const deadline = Date.now() + 5000;
      while (isAlive(entry.pid) && Date.now() < deadline) await sleep(50);
      if (isAlive(entry.pid)) safeKill(entry.pid, 'SIGKILL');
    }
    if (entry.removeDir) fs.rmSync(entry.dir, { recursive: true, force: true });
    fs.rmSync(file, { force: true });
    reaped.push(`${entry.kind} pid ${entry.pid} port ${entry.port} (owner ${entry.ownerPid})`);
  }
  return reaped;
}

// ---------------------------------------------------------------------------
// Process plumbing

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function safeKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

interface Launched {
  child: ChildProcess;
  pid: number;
  exited: Promise<void>;
  hasExited: () => boolean;
}

interface RunAs {
  uid: number;
  gid: number;
}

function launch(cmd: string, args: string[], logFile: string, cwd: string, runAs?: RunAs): Launched {
  const fd = fs.openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(cmd, args, {
      cwd,
      stdio: ['ignore', fd, fd],
      env: serverEnv(),
      ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
    });
  } finally {
    fs.closeSync(fd);
  }
  let done = false;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      done = true;
      resolve();
    });
    child.once('error', () => {
      done = true;
      resolve();
    });
  });
  child.unref();
  if (child.pid === undefined) {
    throw new Error(`could not start ${cmd}: ${tail(logFile)}`);
  }
  return { child, pid: child.pid, exited, hasExited: () => done };
}

/** A small, predictable environment: no PG* or REDIS* variable of the caller leaks in. */
function serverEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C' };
  if (process.env.TZ) env.TZ = process.env.TZ;
  return env;
}

async function waitExit(p: Launched, ms: number): Promise<boolean> {
  if (p.hasExited()) return true;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
  const result = await Promise.race([p.exited.then(() => true), timeout]);
  clearTimeout(timer);
  return result;
}

/** Sends `signal`, and SIGKILL when the process is still there after `deadlineMs`. */
async function terminate(p: Launched, signal: NodeJS.Signals, deadlineMs: number): Promise<void> {
  if (p.hasExited()) return;
  safeKill(p.pid, 'SIGCONT'); // a test may have SIGSTOPped it
  safeKill(p.pid, signal);
  if (await waitExit(p, deadlineMs)) return;
  safeKill(p.pid, 'SIGKILL');
  if (!(await waitExit(p, 5000))) throw new Error(`process ${p.pid} survived SIGKILL`);
}

/** The last lines of a log file, for error messages. */
export function tail(file: string, lines = 30): string {
  try {
    const text = fs.readFileSync(file, 'utf8').trimEnd();
    const all = text.split('\n');
    return `\n--- last ${Math.min(lines, all.length)} lines of ${file} ---\n${all.slice(-lines).join('\n')}`;
  } catch {
    return `\n(no log at ${file})`;
  }
}

class ExitedEarlyError extends Error {}

/** A server binary is not installed; the message says what to install or set instead. */
export class MissingBinaryError extends Error {
  override readonly name = 'MissingBinaryError';
}

async function waitReady(
  what: string,
  p: Launched,
  logFile: string,
  timeoutMs: number,
  probe: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (p.hasExited()) {
      throw new ExitedEarlyError(
        `${what} exited before accepting connections (exit code ${p.child.exitCode ?? p.child.signalCode})${tail(logFile)}`,
      );
    }
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) {
      throw new Error(`${what} did not accept connections within ${timeoutMs} ms${tail(logFile)}`);
    }
    await sleep(50);
  }
}

/**
 * Live servers of this process, killed on exit if a script forgot them. (Inside a Jest
 * test file `process` is Jest's sandbox object and this hook never fires; global
 * teardown reaps forgotten servers instead.)
 */
const live = new Map<Launched, NodeJS.Signals>();
let exitHookInstalled = false;

function track(p: Launched, exitSignal: NodeJS.Signals): void {
  live.set(p, exitSignal);
  void p.exited.then(() => live.delete(p));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const [proc, sig] of live) safeKill(proc.pid, sig);
    });
  }
}

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  return undefined;
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// Redis

export interface RedisServerOptions {
  /** @default false */
  readonly appendonly?: boolean;
  /** @default 'everysec' (only with appendonly) */
  readonly appendfsync?: 'always' | 'everysec';
  /** Data directory; kept on stop() when given. @default a fresh temporary directory, removed on stop() */
  readonly dir?: string;
  /** @default a free port */
  readonly port?: number;
  /** @default 10000 */
  readonly startTimeoutMs?: number;
  /** Require this password (`requirepass`); `url` does not carry it. @default none */
  readonly password?: string;
  /**
   * TLS only: the server listens on `port` with TLS and has no plain port;
   * `url` is rediss://. Clients are not asked for certificates. @default plain TCP
   */
  readonly tls?: { readonly certFile: string; readonly keyFile: string; readonly caFile: string };
}

export interface RedisServer {
  /** `redis://127.0.0.1:<port>` (`rediss://` with the tls option), never with the password. */
  readonly url: string;
  readonly port: number;
  /** Changes on restart(). */
  readonly pid: number;
  readonly dir: string;
  /** Stops the server (SIGTERM, SIGKILL after 10 s) and removes its temporary directory. Idempotent. */
  stop(): Promise<void>;
  /** Sends a signal without waiting, e.g. kill('SIGKILL') to simulate a crash. @default 'SIGKILL' */
  kill(signal?: NodeJS.Signals): void;
  /** Stops the server if it still runs, then starts it again on the same port and data directory. */
  restart(): Promise<void>;
}

export function redisServerBinary(): string {
  const bin = process.env.REDIS_SERVER_BIN ?? findOnPath('redis-server');
  if (!bin) {
    throw new MissingBinaryError(
      'redis-server not found on PATH. Install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis), ' +
        'set REDIS_SERVER_BIN to its path, or set REDIS_URL to a Redis you run yourself.',
    );
  }
  return bin;
}

/**
 * True when the Redis on `port` answers and is the process `pid` (INFO server's
 * process_id): a port taken by another Redis must not pass for ours.
 */
function redisIsUp(
  port: number,
  pid: number,
  access: { password?: string; caFile?: string } = {},
): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = access.caFile
      ? tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(access.caFile), servername: 'localhost' })
      : net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.once('error', () => done(false));
    const ask = () =>
      sock.write(
        (access.password === undefined ? '' : `AUTH ${JSON.stringify(access.password)}\r\n`) +
          'INFO server\r\n',
      );
    sock.once(access.caFile ? 'secureConnect' : 'connect', ask);
    let authed = access.password === undefined;
    sock.on('data', (d) => {
      buf += d.toString();
      if (!authed) {
        // AUTH answers "+OK" first; anything else (-WRONGPASS) means not ours.
        if (buf.length < 5) return;
        if (!buf.startsWith('+OK\r\n')) return done(false);
        buf = buf.slice(5);
        authed = true;
      }
      // "-LOADING ..." while the AOF is replayed: not ready yet.
      if (buf.startsWith('-')) return done(false);
      const m = /process_id:(\d+)/.exec(buf);
      if (m) done(Number(m[1]) === pid);
    });
  });
}

/**
 * A port from freePort() can be taken by someone else before the server binds it;
 * then the server exits at once and we try another port (unless one was asked for).
 */
async function withPortRetry<T>(fixedPort: number | undefined, start: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      const portTaken = err instanceof ExitedEarlyError && /address already in use/i.test(err.message);
      if (!portTaken || fixedPort !== undefined || attempt >= 5) throw err;
    }
  }
}

export function startRedis(opts: RedisServerOptions = {}): Promise<RedisServer> {
  return withPortRetry(opts.port, () => startRedisOnce(opts));
}

async function startRedisOnce(opts: RedisServerOptions): Promise<RedisServer> {
  const bin = redisServerBinary();
  const ownsDir = opts.dir === undefined;
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'tf-redis-'));
  fs.mkdirSync(dir, { recursive: true });
  const port = opts.port ?? (await freePort());
  const logFile = path.join(dir, 'redis.log');
  const timeoutMs = opts.startTimeoutMs ?? 10_000;
  // prettier-ignore
  const listen = opts.tls
    ? [
        '--port', '0',
        '--tls-port', String(port),
        '--tls-cert-file', opts.tls.certFile,
        '--tls-key-file', opts.tls.keyFile,
        '--tls-ca-cert-file', opts.tls.caFile,
        '--tls-auth-clients', 'no',
      ]
    : ['--port', String(port)];
  // prettier-ignore
  const args = [
    ...listen,
    ...(opts.password === undefined ? [] : ['--requirepass', opts.password]),
    '--bind', '127.0.0.1',
    '--dir', dir,
    '--daemonize', 'no',
    '--protected-mode', 'no',
    '--save', '',
    '--appendonly', opts.appendonly ? 'yes' : 'no',
    '--appendfsync', opts.appendfsync ?? 'everysec',
  ];
  const regFile = registryFile('redis');
  let proc: Launched | undefined;
  let stopped: Promise<void> | undefined;

  const start = async () => {
    const p = launch(bin, args, logFile, dir);
    proc = p;
    track(p, 'SIGKILL');
    writeEntry(regFile, {
      kind: 'redis',
      pid: p.pid,
      ownerPid: process.pid,
      dir,
      removeDir: ownsDir,
      port,
      startedAt: new Date().toISOString(),
    });
    try {
      await waitReady(`redis-server on 127.0.0.1:${port}`, p, logFile, timeoutMs, () =>
        redisIsUp(port, p.pid, {
          ...(opts.password === undefined ? {} : { password: opts.password }),
          ...(opts.tls ? { caFile: opts.tls.caFile } : {}),
        }),
      );
    } catch (err) {
      await terminate(p, 'SIGKILL', 1000).catch(() => undefined);
      throw err;
    }
  };

  try {
    await start();
  } catch (err) {
    fs.rmSync(regFile, { force: true });
    if (ownsDir) fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  const current = (): Launched => {
    if (!proc) throw new Error('redis-server was never started');
    return proc;
  };

  return {
    url: `${opts.tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    port,
    dir,
    get pid() {
      return current().pid;
    },
    kill(signal: NodeJS.Signals = 'SIGKILL') {
      safeKill(current().pid, signal);
    },
    async restart() {
      if (stopped) throw new Error('restart() after stop()');
      await terminate(current(), 'SIGTERM', 10_000);
      await start();
    },
    stop() {
      stopped ??= (async () => {
        await terminate(current(), 'SIGTERM', 10_000);
        fs.rmSync(regFile, { force: true });
        if (ownsDir) fs.rmSync(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

// ---------------------------------------------------------------------------
// PostgreSQL

export interface PostgresServerOptions {
  /** @default a free port */
  readonly port?: number;
  /**
   * PostgreSQL's own durable defaults (fsync and full_page_writes on), for
   * benchmarks that must measure what production pays. @default false
   */
  readonly durable?: boolean;
  /** Extra `-c name=value` server settings (e.g. for profiling: shared_preload_libraries). @default none */
  readonly settings?: Readonly<Record<string, string>>;
  /** @default 30000 */
  readonly startTimeoutMs?: number;
  /**
   * TCP clients must log in as `postgres` with this password (scram-sha-256);
   * `url` does not carry it. The Unix socket stays trusted. @default trust, no password
   */
  readonly password?: string;
  /**
   * TLS only on TCP (`hostssl`): plain TCP connections are refused. The files
   * are copied into the server's directory (PostgreSQL wants its key private). @default no TLS
   */
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
}

export interface PostgresServer {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication). */
  readonly url: string;
  readonly port: number;
  /** The postmaster PID; changes on restart(). */
  readonly pid: number;
  readonly dataDir: string;
  /** Fast shutdown (SIGINT, SIGKILL after 10 s), then removes the data directory. Idempotent. */
  stop(): Promise<void>;
  /** Sends a signal to the postmaster without waiting. @default 'SIGKILL' */
  kill(signal?: NodeJS.Signals): void;
  /** Fast shutdown if it still runs, then starts again on the same port and data directory. */
  restart(): Promise<void>;
}

/** The directory holding `initdb` and `postgres`. */
export function postgresBinDir(): string {
  const candidates: string[] = [];
  if (process.env.PG_BIN_DIR) candidates.push(process.env.PG_BIN_DIR);
  const onPath = findOnPath('initdb');
  if (onPath) candidates.push(path.dirname(fs.realpathSync(onPath)), path.dirname(onPath));
  try {
    const versions = fs
      .readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) candidates.push(path.join('/usr/lib/postgresql', v, 'bin'));
  } catch {
    // not a Debian layout
  }
  const dir = candidates.find(
    (d) => isExecutable(path.join(d, 'initdb')) && isExecutable(path.join(d, 'postgres')),
  );
  if (!dir) {
    throw new MissingBinaryError(
      'PostgreSQL server binaries (initdb, postgres) not found on PATH or in /usr/lib/postgresql/*/bin. ' +
        'Install them (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql), set PG_BIN_DIR, ' +
        'or set DATABASE_URL to a PostgreSQL you run yourself ' +
        '(set PG_BIN_DIR or install postgresql)',
    );
  }
  return dir;
}

/** uid/gid to run PostgreSQL as when we are root (PostgreSQL refuses root). */
function postgresUser(): RunAs | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  let line: string | undefined;
  try {
    line = fs
      .readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('postgres:'));
  } catch {
    // fall through
  }
  if (!line) {
    try {
      line = execFileSync('getent', ['passwd', 'postgres'], { encoding: 'utf8' }).trim();
    } catch {
      // fall through
    }
  }
  const [, , uid, gid] = line?.split(':') ?? [];
  if (!uid || !gid) {
    throw new Error(
      'running as root, but there is no `postgres` user to run PostgreSQL as (initdb refuses root)',
    );
  }
  return { uid: Number(uid), gid: Number(gid) };
}

function run(cmd: string, args: string[], cwd: string, runAs?: RunAs): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      {
        cwd,
        env: serverEnv(),
        maxBuffer: 16 * 1024 * 1024,
        ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
      },
      (err, stdout, stderr) =>
        err
          ? reject(new Error(`${path.basename(cmd)} failed: ${err.message}\n${stdout}\n${stderr}`))
          : resolve(),
    );
  });
}

/**
 * True when `select 1` works on `url` and the server there is ours (its data
 * directory is `dataDir`): a port taken by another PostgreSQL must not pass for ours.
 */
async function postgresIsUp(url: string, dataDir: string, socketDir?: string): Promise<boolean> {
  // Over the (trusted) Unix socket when TCP needs a password or TLS.
  const client = socketDir
    ? new Client({
        host: socketDir,
        port: Number(new URL(url).port),
        user: 'postgres',
        database: 'postgres',
        connectionTimeoutMillis: 1000,
      })
    : new Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('select 1');
    const r = await client.query<{ d: string }>(`select current_setting('data_directory') as d`);
    return r.rows[0]?.d === dataDir;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export function startPostgres(opts: PostgresServerOptions = {}): Promise<PostgresServer> {
  return withPortRetry(opts.port, () => startPostgresOnce(opts));
}

async function startPostgresOnce(opts: PostgresServerOptions): Promise<PostgresServer> {
  const binDir = postgresBinDir();
  const runAs = postgresUser();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tf-pg-'));
  const dataDir = path.join(root, 'data');
  const logFile = path.join(root, 'postgres.log');
  const timeoutMs = opts.startTimeoutMs ?? 30_000;
  const regFile = registryFile('postgres');
  let proc: Launched | undefined;
  let stopped: Promise<void> | undefined;
  let port = 0;

  const cleanup = () => {
    fs.rmSync(regFile, { force: true });
    fs.rmSync(root, { recursive: true, force: true });
  };

  try {
    if (runAs) fs.chownSync(root, runAs.uid, runAs.gid);
    writeEntry(regFile, {
      kind: 'postgres',
      pid: 0,
      ownerPid: process.pid,
      dir: root,
      removeDir: true,
      port: 0,
      startedAt: new Date().toISOString(),
    });
    await run(
      path.join(binDir, 'initdb'),
      [
        '-D',
        dataDir,
        '-A',
        'trust',
        '-U',
        'postgres',
        '-E',
        'UTF8',
        '--locale=C',
        '--no-sync',
        '--no-instructions',
      ],
      root,
      runAs,
    );
    if (opts.password !== undefined || opts.tls) {
      const method = opts.password === undefined ? 'trust' : 'scram-sha-256';
      const host = opts.tls ? 'hostssl' : 'host';
      fs.writeFileSync(
        path.join(dataDir, 'pg_hba.conf'),
        [
          'local all all trust',
          `${host} all all 127.0.0.1/32 ${method}`,
          `${host} all all ::1/128 ${method}`,
          '',
        ].join('\n'),
      );
    }
    if (opts.tls) {
      for (const [from, to] of [
        [opts.tls.certFile, 'server.crt'],
        [opts.tls.keyFile, 'server.key'],
      ] as const) {
        fs.copyFileSync(from, path.join(root, to));
        fs.chmodSync(path.join(root, to), 0o600);
        if (runAs) fs.chownSync(path.join(root, to), runAs.uid, runAs.gid);
      }
    }
    port = opts.port ?? (await freePort());
  } catch (err) {
    cleanup();
    throw err;
  }
  const socketDir = opts.password !== undefined || opts.tls ? root : undefined;

  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  // prettier-ignore
  const args = [
    '-D', dataDir,
    '-p', String(port),
    '-h', '127.0.0.1',
    '-k', root, // the Unix socket lives in the temporary directory, never in /var/run/postgresql
    '-c', `fsync=${opts.durable ? 'on' : 'off'}`,
    // synchronous_commit stays on: with it off, a killed postmaster loses
    // commits a client was told about (the WAL was still in shared memory),
    // and the queue has already acked those trades. fsync=off only risks an
    // OS crash, which a test or dev run does not survive anyway.
    '-c', 'synchronous_commit=on',
    '-c', `full_page_writes=${opts.durable ? 'on' : 'off'}`,
    '-c', 'max_connections=300',
    '-c', 'log_line_prefix=%m [%p] ',
    ...(opts.tls
      ? ['-c', 'ssl=on', '-c', `ssl_cert_file=${path.join(root, 'server.crt')}`, '-c', `ssl_key_file=${path.join(root, 'server.key')}`]
      : []),
    ...Object.entries(opts.settings ?? {}).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
  ];
  let passwordSet = false;

  const start = async () => {
    const p = launch(path.join(binDir, 'postgres'), args, logFile, root, runAs);
    proc = p;
    // SIGQUIT = immediate shutdown: the postmaster also stops its backends.
    track(p, 'SIGQUIT');
    writeEntry(regFile, {
      kind: 'postgres',
      pid: p.pid,
      ownerPid: process.pid,
      dir: root,
      removeDir: true,
      port,
      startedAt: new Date().toISOString(),
    });
    try {
      await waitReady(`postgres on 127.0.0.1:${port}`, p, logFile, timeoutMs, () =>
        postgresIsUp(url, dataDir, socketDir),
      );
      if (opts.password !== undefined && !passwordSet) {
        const admin = new Client({ host: root, port, user: 'postgres', database: 'postgres' });
        await admin.connect();
        try {
          // A literal, not a parameter: ALTER ROLE takes no bind parameters.
          await admin.query(`alter role postgres password '${opts.password.replace(/'/g, "''")}'`);
        } finally {
          await admin.end();
        }
        passwordSet = true;
      }
    } catch (err) {
      await terminate(p, 'SIGQUIT', 2000).catch(() => undefined);
      throw err;
    }
  };

  try {
    await start();
  } catch (err) {
    cleanup();
    throw err;
  }

  const current = (): Launched => {
    if (!proc) throw new Error('postgres was never started');
    return proc;
  };

  return {
    url,
    port,
    dataDir,
    get pid() {
      return current().pid;
    },
    kill(signal: NodeJS.Signals = 'SIGKILL') {
      safeKill(current().pid, signal);
    },
    async restart() {
      if (stopped) throw new Error('restart() after stop()');
      // SIGINT = fast shutdown: disconnects clients instead of waiting for them (SIGTERM would).
      await terminate(current(), 'SIGINT', 10_000);
      // After a SIGKILL of the postmaster its backends linger for a moment, and a new
      // postmaster refuses the still-attached shared memory: retry briefly.
      for (let attempt = 1; ; attempt++) {
        try {
          await start();
          return;
        } catch (err) {
          if (attempt >= 20 || !(err instanceof ExitedEarlyError)) throw err;
          await sleep(250);
        }
      }
    },
    stop() {
      stopped ??= (async () => {
        await terminate(current(), 'SIGINT', 10_000);
        cleanup();
      })();
      return stopped;
    },
  };
}
