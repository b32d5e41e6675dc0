import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Client } from 'pg';
import { loadProducerConfig, maskUrl } from '../config';
import { createRedis, pgConnection } from '../config/connections';
import { createDb } from '../db/client';
import { migrateToLatest } from '../db/migrate';
import { MissingBinaryError, freePort, startPostgres, startRedis } from '../dev/local-servers';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { loadScaledObjectModel } from '../scaling';
import { runDemo } from './demo';
import { startLocalAutoscaler } from './autoscale';
import { intOption, parse, UsageError } from './args';

const USAGE = `Usage: tradefleet dev [--workers N] [--port P] [--demo] [--autoscale [--charts DIR] [--speed X]]
  Runs the whole fleet on this machine: Redis and PostgreSQL (started here, in
  temporary directories removed on exit, unless REDIS_URL / DATABASE_URL point at
  yours), the migrations, the producer API on --port and N worker processes.
  --demo       also sends a stream of sample trades and shows progress.
  --autoscale  instead of N fixed workers, a local stand-in for KEDA reads the
               synthesized ScaledObject (--charts, default charts/dev), polls the
               same Redis signals, applies the same replica arithmetic and starts or
               drains worker processes. --speed runs its clocks faster (default 1).`;

const BIN = path.join(__dirname, '..', '..', 'bin', 'tradefleet.js');

export async function dev(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      workers: { type: 'string' },
      port: { type: 'string' },
      demo: { type: 'boolean' },
      autoscale: { type: 'boolean' },
      charts: { type: 'string' },
      speed: { type: 'string' },
    },
    USAGE,
  );
  const speed = Number(values.speed ?? 1);
  if (!(speed > 0 && speed <= 1000)) {
    throw new UsageError(
      `--speed must be a number above 0 and at most 1000; got ${JSON.stringify(values.speed)}`,
    );
  }
  // Read the chart before starting anything, so that a bad --charts fails fast.
  const model = values.autoscale
    ? loadScaledObjectModel(path.resolve(values.charts ?? path.join(__dirname, '..', '..', 'charts', 'dev')))
    : undefined;
  const workers = intOption('workers', values.workers, 2, 1, 64);
  const port = values.port
    ? intOption('port', values.port, 8080, 1, 65535)
    : Number(process.env.PORT ?? 8080);
  const cleanups: (() => Promise<void>)[] = [];
  const children: ChildProcess[] = [];
  /** Workers the autoscaler asked to stop: their exit is expected. */
  const retiring = new Set<ChildProcess>();
  let stopping: Promise<void> | undefined;
  let autoscaler: { stop(): void } | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      console.error('\ntradefleet dev: stopping (a second Ctrl-C forces)');
      autoscaler?.stop();
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

    // Quiet by default: one line per trade from every process drowns the console.
    const env = {
      LOG_LEVEL: 'warn',
      ...process.env,
      REDIS_URL: redisUrl,
      DATABASE_URL: databaseUrl,
      TRADEFLEET_NAMESPACE: namespace,
      PORT: String(port),
      // The dashboard is on only with a password: make one for this run unless given.
      DASHBOARD_PASSWORD: process.env.DASHBOARD_PASSWORD ?? randomBytes(12).toString('base64url'),
    };
    // The producer's configuration (a superset of the worker's connections): a bad
    // variable stops here, before any process starts; dev's own clients use it too.
    const config = loadProducerConfig(env);
    const { db, close } = createDb({ ...pgConnection(config), poolSize: 1 });
    const migrated = await migrateToLatest(db).finally(close);
    console.error(
      `tradefleet dev: database migrated (${migrated.applied.length} applied, now at ${migrated.current})`,
    );
    const producer = launch('producer', ['producer'], env);
    children.push(producer);
    let workerNo = 0;
    const workerProcs: ChildProcess[] = [];
    const metricsPorts: number[] = [];
    // Fixed workers serve /metrics on ports of their own; autoscaled ones come
    // and go, so they serve none (METRICS_PORT 0).
    const startWorker = (metricsPort = 0) => {
      const w = launch(`worker-${++workerNo}`, ['worker'], { ...env, METRICS_PORT: String(metricsPort) });
      workerProcs.push(w);
      children.push(w);
      w.once('exit', () => {
        workerProcs.splice(workerProcs.indexOf(w), 1);
        children.splice(children.indexOf(w), 1);
        if (!retiring.delete(w) && !stopping) {
          console.error(
            `tradefleet dev: a worker exited unexpectedly (${w.exitCode ?? w.signalCode}); stopping the fleet`,
          );
          void stop().then(() => process.exit(1));
        }
      });
    };
    if (!model) {
      for (let i = 0; i < workers; i++) {
        metricsPorts.push(await freePort());
        startWorker(metricsPorts[i]);
      }
    }
    const api = `http://127.0.0.1:${port}`;
    await waitReady(`${api}/readyz`, producer);
    console.error(
      [
        '',
        `tradefleet dev is up: producer API ${api}, ${workers} worker(s)`,
        `  Redis      ${maskUrl(redisUrl)}`,
        `  PostgreSQL ${maskUrl(databaseUrl)}`,
        `  dashboard  ${api}/dashboard (user ${process.env.DASHBOARD_USER ?? 'admin'}, password ${env.DASHBOARD_PASSWORD})`,
        ...(metricsPorts.length
          ? [
              `  metrics    ${api}/metrics, workers: ${metricsPorts.map((p) => `http://127.0.0.1:${p}/metrics`).join(' ')}`,
            ]
          : []),
        `  try:  curl -s -XPOST ${api}/v1/trades -H 'content-type: application/json'${config.apiTokens.length > 0 ? ` -H "authorization: Bearer $TOKEN"` : ''} -d @docs/examples/trade.json`,
        `        REDIS_URL=${maskUrl(redisUrl)} DATABASE_URL=${maskUrl(databaseUrl)} npx tradefleet inspect`,
        '  Ctrl-C stops everything.',
        '',
      ].join('\n'),
    );
    if (model) {
      const redis = createRedis(config, { maxRetriesPerRequest: 1 });
      cleanups.push(async () => redis.disconnect());
      console.error(
        `tradefleet dev: autoscaling workers 0..${model.maxReplicaCount} like KEDA (polling ${model.pollingIntervalSeconds} s, cooldown ${model.cooldownPeriodSeconds} s${speed !== 1 ? `, clocks x${speed}` : ''})`,
      );
      autoscaler = startLocalAutoscaler({
        redis,
        namespace,
        model,
        speed,
        running: () => workerProcs.filter((w) => !retiring.has(w)).length,
        scaleUp: () => startWorker(),
        scaleDown: () => {
          const w = [...workerProcs].reverse().find((x) => !retiring.has(x));
          if (!w) return;
          retiring.add(w);
          w.kill('SIGTERM');
        },
        log: (line) => console.error(line),
      });
    }
    if (values.demo) {
      void runDemo({
        api,
        redis: config,
        ...(config.apiTokens[0] === undefined ? {} : { token: config.apiTokens[0] }),
        namespace,
        isStopping: () => stopping !== undefined,
      });
    }
    await new Promise((r) => producer.once('exit', r));
    if (!stopping) {
      console.error('tradefleet dev: the producer exited unexpectedly; stopping the fleet');
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
