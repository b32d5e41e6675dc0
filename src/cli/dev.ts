import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { Client } from 'pg';
import { createDb } from '../db/client';
import { migrateToLatest } from '../db/migrate';
import { MissingBinaryError, freePort, startPostgres, startRedis } from '../dev/local-servers';
import { runDemo } from './demo';
import { intOption, parse } from './args';

const USAGE = `Usage: tradefleet dev [--workers N] [--port P] [--demo]
  Runs the whole fleet on this machine: Redis and PostgreSQL (started here, in
  temporary directories removed on exit, unless REDIS_URL / DATABASE_URL point at
  yours), the migrations, the producer API on --port and N worker processes.
  --demo also sends a stream of sample trades and shows progress.`;

const BIN = join(__dirname, '..', '..', 'bin', 'tradefleet.js');

export async function dev(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    { workers: { type: 'string' }, port: { type: 'string' }, demo: { type: 'boolean' } },
    USAGE,
  );
  const workers = intOption('workers', values.workers, 2, 1, 64);
  const port = values.port
    ? intOption('port', values.port, 8080, 1, 65535)
    : Number(process.env.PORT ?? 8080);
  const cleanups: (() => Promise<void>)[] = [];
  const children: ChildProcess[] = [];
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      console.error('\ntradefleet dev: stopping (a second Ctrl-C forces)');
      for (const c of children) c.kill('SIGTERM');
      await Promise.all(
        children.map((c) =>
          c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : undefined,
        ),
      );
      for (const fn of cleanups.reverse()) await fn().catch(() => undefined);
    })());
  let signals = 0;
  const onSignal = () => {
    if (++signals > 1) {
      for (const c of children) c.kill('SIGKILL');
      process.exit(130);
    }
    void stop().then(() => process.exit(0));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    const redisUrl = process.env.REDIS_URL ?? (await ownRedis(cleanups));
    const databaseUrl = process.env.DATABASE_URL ?? (await ownPostgres(cleanups));
    const namespace = process.env.TRADEFLEET_NAMESPACE ?? 'tradefleet';
    const { db, close } = createDb({ databaseUrl, poolSize: 1 });
    const migrated = await migrateToLatest(db).finally(close);
    console.error(
      `tradefleet dev: database migrated (${migrated.applied.length} applied, now at ${migrated.current})`,
    );

    // Quiet by default: one line per trade from every process drowns the console.
    const env = {
      LOG_LEVEL: 'warn',
      ...process.env,
      REDIS_URL: redisUrl,
      DATABASE_URL: databaseUrl,
      TRADEFLEET_NAMESPACE: namespace,
      PORT: String(port),
    };
    children.push(launch('producer', ['producer'], env));
    for (let i = 1; i <= workers; i++) children.push(launch(`worker-${i}`, ['worker'], env));
    const api = `http://127.0.0.1:${port}`;
    await waitReady(`${api}/readyz`, children[0]!);
    console.error(
      [
        '',
        `tradefleet dev is up: producer API ${api}, ${workers} worker(s)`,
        `  Redis      ${redisUrl}`,
        `  PostgreSQL ${databaseUrl}`,
        `  try:  curl -s -XPOST ${api}/v1/trades -H 'content-type: application/json' -d @docs/examples/trade.json`,
        `        REDIS_URL=${redisUrl} DATABASE_URL=${databaseUrl} npx tradefleet inspect`,
        '  Ctrl-C stops everything.',
        '',
      ].join('\n'),
    );
    if (values.demo) void runDemo({ api, redisUrl, namespace, isStopping: () => stopping !== undefined });
    await Promise.race(children.map((c) => new Promise((r) => c.once('exit', r))));
    if (!stopping) {
      console.error('tradefleet dev: a process exited unexpectedly; stopping the fleet');
      await stop();
      return 1;
    }
    await stopping;
    return 0;
  } catch (err) {
    await stop();
    if (err instanceof MissingBinaryError) {
      console.error(`tradefleet dev: ${err.message}`);
      return 1;
    }
    throw err;
  }
}

async function ownRedis(cleanups: (() => Promise<void>)[]): Promise<string> {
  const redis = await startRedis({ appendonly: true, appendfsync: 'everysec' });
  cleanups.push(() => redis.stop());
  console.error(`tradefleet dev: started redis-server on ${redis.url} (AOF on; data in ${redis.dir})`);
  return redis.url;
}

async function ownPostgres(cleanups: (() => Promise<void>)[]): Promise<string> {
  const pg = await startPostgres();
  cleanups.push(() => pg.stop());
  const client = new Client({ connectionString: pg.url });
  await client.connect();
  await client.query('create database tradefleet');
  await client.end();
  const url = pg.url.replace(/\/postgres$/, '/tradefleet');
  console.error(`tradefleet dev: started PostgreSQL on ${url} (data in ${pg.dataDir})`);
  return url;
}

function launch(name: string, args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const prefix = `[${name}] `;
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on('line', (line) => process.stderr.write(prefix + line + '\n'));
  }
  return child;
}

async function waitReady(url: string, producer: ChildProcess, timeoutMs = 60000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (producer.exitCode !== null)
      throw new Error(`the producer exited (${producer.exitCode}) before it was ready`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the producer was not ready at ${url} within ${timeoutMs / 1000} s`);
}

export { freePort };
