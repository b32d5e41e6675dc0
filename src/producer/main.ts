/**
 * The producer process: the only place that opens the producer's connections.
 *
 *   node --import tsx src/producer/main.ts
 *
 * Shutdown (SIGTERM, SIGINT) is idempotent and bounded: new requests get 503
 * `shutting_down`, in-flight ones may finish within SHUTDOWN_TIMEOUT_MS, then
 * the queue, Redis and PostgreSQL are closed in the reverse order of opening.
 * A second signal exits at once.
 */
import { takeEarlySignal } from '../cli/early-signal';
import type { FastifyInstance } from 'fastify';
import type { RedisOptions } from 'ioredis';

import { describeConfig, loadProducerConfig, type Env, type ProducerConfig } from '../config';
import { createRedis, pgConnection } from '../config/connections';
import { createDb } from '../db/client';
import { serviceLogger, type Logger } from '../observability/logger';
import { createRegistry } from '../observability/metrics';
import { createTracing } from '../observability/tracing';
import { PartitionAdmin } from '../queue/admin';
import { PartitionQueue } from '../queue/partition-queue';
import { buildProducerApp } from './app';

/**
 * ioredis options that make every call fail fast when Redis is unreachable,
 * so that a request answers 503 within about a second instead of waiting:
 * no offline queue, one retry, a command timeout; the connection itself keeps
 * reconnecting (capped backoff) so the producer recovers on its own.
 */
export function producerRedisOptions(): RedisOptions {
  return {
    commandTimeout: 1000,
    connectTimeout: 2000,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    // Concurrent requests' commands leave in one write per event-loop turn.
    enableAutoPipelining: true,
  };
}

/** A running producer. */
export interface ProducerHandle {
  readonly app: FastifyInstance;
  readonly config: ProducerConfig;
  /** `http://host:port` it listens on. */
  readonly url: string;
  /** Graceful shutdown; idempotent (later calls return the same promise). */
  close(): Promise<void>;
}

export interface RunProducerOptions {
  /** Install SIGTERM/SIGINT handlers that shut down and exit the process. @default true */
  readonly handleSignals?: boolean;
  /** @default a logger built from the configuration */
  readonly logger?: Logger;
}

/** Loads the configuration from `env`, connects, listens, and returns the running producer. */
export async function runProducer(
  env: Env = process.env,
  options: RunProducerOptions = {},
): Promise<ProducerHandle> {
  const config = loadProducerConfig(env);
  // A bounded log buffer: when stdout cannot keep up, lines are dropped rather than memory grown.
  const { logger, stop: stopLogReports } = serviceLogger(options.logger, {
    level: config.logLevel,
    name: 'tradefleet-producer',
  });
  logger.info({ config: describeConfig(config) }, 'starting producer');

  const redis = createRedis(config, { ...producerRedisOptions(), connectionName: 'tradefleet-producer' });
  // Without a listener ioredis prints every reconnect failure to stderr; log it once per outage.
  let redisDown = false;
  redis.on('error', (err: Error) => {
    if (!redisDown) logger.warn({ err: { message: err.message } }, 'Redis connection error; reconnecting');
    redisDown = true;
  });
  redis.on('ready', () => {
    if (redisDown) logger.info('Redis connection restored');
    redisDown = false;
  });

  const dbHandle = createDb({
    ...pgConnection(config),
    poolSize: config.pgPoolSize,
    applicationName: 'tradefleet-producer',
    logger,
  });
  const queue = new PartitionQueue({ redis, namespace: config.namespace, maxBacklog: config.maxBacklog });

  const registry = createRegistry('producer');
  // The dashboard's operator actions share the producer's Redis connection.
  const admin = config.dashboard.enabled
    ? new PartitionAdmin(redis, config.namespace, config.dedupWindowSeconds)
    : undefined;
  if (!admin) logger.info('dashboard off: set DASHBOARD_PASSWORD to serve /dashboard');

  const app = buildProducerApp({
    queue,
    redis,
    db: dbHandle.db,
    config,
    logger,
    authTokens: config.apiTokens,
    rateLimit: config.rateLimit,
    maxInflightRequests: config.maxInflightRequests,
    metricsRegistry: registry,
    tracing: createTracing(config.tracingEnabled),
    ...(admin
      ? {
          dashboard: {
            user: config.dashboard.user,
            password: config.dashboard.password,
            readOnly: config.dashboard.readOnly,
            admin,
          },
        }
      : {}),
  });

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      logger.info({ deadlineMs: config.shutdownTimeoutMs }, 'shutting down: draining in-flight requests');
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), config.shutdownTimeoutMs);
      });
      const drained = await Promise.race([app.close().then(() => 'drained' as const), deadline]);
      clearTimeout(timer);
      if (drained === 'timeout') {
        logger.warn('shutdown deadline reached: closing the remaining connections');
        app.server.closeAllConnections();
      }
      // Reverse order of opening; each step runs even if an earlier one failed.
      const steps: [string, () => Promise<unknown>][] = [
        ['Redis', () => redis.quit().catch(() => redis.disconnect())],
        ['PostgreSQL', () => dbHandle.close()],
      ];
      for (const [what, step] of steps) {
        try {
          await step();
        } catch (err) {
          logger.warn({ err }, `closing ${what} failed`);
        }
      }
      stopLogReports();
      logger.info('producer stopped');
    })());

  if (options.handleSignals ?? true) {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals += 1;
      if (signals > 1) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      logger.info({ signal }, 'signal received');
      close().then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }

  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (err) {
    logger.fatal({ err }, 'could not listen');
    await close();
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `http://${host}:${port}`;
  logger.info({ url }, `producer listening on ${url}`);
  // A SIGTERM that arrived while loading: shut down now that we can do it cleanly.
  if (options.handleSignals ?? true) {
    const early = takeEarlySignal();
    if (early) process.emit('SIGTERM' === early ? 'SIGTERM' : 'SIGINT', early);
  }
  return { app, config, url, close };
}

if (require.main === module) {
  runProducer().catch((err: unknown) => {
    // The logger may not exist yet (a configuration error): write the message plainly.
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
