/**
 * The worker process: drains partitions from Redis into PostgreSQL.
 *
 * The only place in the worker that opens connections. Run it with
 * `node --import tsx src/worker/main.ts` (or through the CLI, which calls
 * runWorker). Configuration comes from the environment (see src/config).
 */
import { sql } from 'kysely';
import type { Redis } from 'ioredis';

import { describeConfig, loadWorkerConfig, ConfigError, type Env, type WorkerConfig } from '../config';
import { createRedis, pgConnection } from '../config/connections';
import { createDb, type DbHandle } from '../db';
import type { Registry } from 'prom-client';

import { createLogger, serviceLogger, type Logger } from '../observability/logger';
import {
  bounded,
  BATCH_RESULTS,
  createRegistry,
  createWorkerMetrics,
  LEASE_LOSS_REASONS,
  REASON_CODES,
  registerQueueMetrics,
  type BatchResult,
  type RetryCause,
  type WorkerMetrics,
} from '../observability/metrics';
import { startMetricsServer, type MetricsServer } from '../observability/metrics-server';
import { createTracing, startApplySpan, TRACING_OFF, type Tracing } from '../observability/tracing';
import {
  HaltPartitionError,
  LeaseLostError,
  PartitionConsumer,
  readSignals,
  Reconciler,
  type Batch,
  type ConsumerEvent,
  raiseEpoch,
} from '../queue';
import { applyBatches, FencedError, type ApplyOptions } from './apply';
import { GroupCommitter } from './group-commit';
import { takeEarlySignal } from '../cli/early-signal';
import { CircuitBreaker, type BreakerState } from './circuit-breaker';
import { failureCause, isConnectionError, isTransientError, withRetry } from './retry';

/** Tuning that has no environment variable (yet); the defaults suit production. */
export interface WorkerTuning {
  /** In-place retries of a batch on transient errors. @default { attempts: 5, baseMs: 100, maxMs: 2000 } */
  readonly retry?: { readonly attempts: number; readonly baseMs: number; readonly maxMs: number };
  /** @default { threshold: 5, probeBaseMs: 1000, probeMaxMs: 10000 } */
  readonly breaker?: {
    readonly threshold: number;
    readonly probeBaseMs: number;
    readonly probeMaxMs: number;
  };
  /**
   * How often the reconciler makes ready again the partitions with trades
   * that are neither ready nor leased (state changed from outside). @default 5000
   */
  readonly reconcileIntervalMs?: number;
  /** Group commit (see group-commit.ts). @default { maxBatches: 64, maxTrades: 1024, maxInFlight: 2 } */
  readonly groupCommit?: {
    readonly maxBatches?: number;
    readonly maxTrades?: number;
    readonly maxInFlight?: number;
  };
}

export interface RunWorkerOptions extends WorkerTuning {
  /** @default a JSON logger on stdout at LOG_LEVEL */
  readonly logger?: Logger;
  /** Install SIGTERM/SIGINT handlers that shut down and exit. @default true */
  readonly handleSignals?: boolean;
  /** @default process.exit */
  readonly exit?: (code: number) => void;
}

export interface RunningWorker {
  readonly config: WorkerConfig;
  readonly logger: Logger;
  readonly consumer: PartitionConsumer;
  readonly reconciler: Reconciler;
  readonly breaker: CircuitBreaker;
  /** What /metrics serves. */
  readonly registry: Registry;
  /** The /metrics endpoint; undefined when METRICS_PORT is 0 or the port could not be bound. */
  readonly metricsServer: MetricsServer | undefined;
  /**
   * Graceful shutdown, idempotent (the same promise every time): stop
   * claiming partitions, let batches in hand finish within SHUTDOWN_TIMEOUT_MS
   * (each partition is handed back, ready, at its batch boundary), then force
   * (the leases in hand expire and are taken over); close reconciler,
   * consumer, Redis and PostgreSQL. `forced` is true when the deadline was hit.
   */
  close(): Promise<{ forced: boolean }>;
}

export interface BatchHandlerDeps {
  readonly db: DbHandle['db'];
  readonly policy: ApplyOptions['policy'];
  readonly logger: Logger;
  readonly breaker: CircuitBreaker;
  readonly retry: NonNullable<WorkerTuning['retry']>;
  /** True once shutdown began: batches in hand stop retrying. */
  readonly stopping: () => boolean;
  /** @default none */
  readonly metrics?: WorkerMetrics;
  /** @default off */
  readonly tracing?: Tracing;
  /**
   * Called when PostgreSQL fenced a batch with a newer stored epoch: raises the
   * Redis epoch counter to it (raiseEpoch), so that, after Redis lost its
   * epochs, the next lease can commit again. @default none
   */
  readonly onFenced?: (partitionKey: string, storedEpoch: number) => Promise<unknown>;
  /** @default the GroupCommitter defaults */
  readonly groupCommit?: WorkerTuning['groupCommit'];
}

/** The retry-metric cause of a failed partition batch (the partition is retried after a backoff). */
export function partitionFailureCause(err: unknown): RetryCause {
  if (err instanceof LeaseLostError) return 'lease_lost';
  if (err instanceof FencedError) return 'fenced';
  return failureCause(err);
}

function seqRange(batch: Batch): { firstSeq: number | undefined; lastSeq: number | undefined } {
  return { firstSeq: batch.items[0]?.seq, lastSeq: batch.items[batch.items.length - 1]?.seq };
}

/**
 * The PartitionConsumer handler: hands each batch to a group committer, which
 * applies the batches of several partitions in one transaction (applyBatches)
 * with in-place retries of transient errors, reporting each attempt to the
 * circuit breaker. At info, one line per committed transaction (its
 * partitions and trades); at debug, one line per batch (partitionKey, epoch,
 * seq range, tradeIds); a warning per dead letter at any level. A line per
 * batch at info cost about 60 us of worker CPU each: with one trade per
 * partition, a quarter of the worker's time (bench/profile.ts, SCENARIO=unique).
 */
export function createBatchHandler(deps: BatchHandlerDeps): (batch: Batch) => Promise<void> {
  const { db, policy, logger, breaker, retry, metrics } = deps;
  const tracing = deps.tracing ?? TRACING_OFF;
  const finished = (result: BatchResult, started: number) =>
    metrics?.batchDuration.observe(
      { result: bounded(result, BATCH_RESULTS, 'failed') },
      (performance.now() - started) / 1000,
    );
  const attempt = async (batches: Batch[]) => {
    try {
      // Fenced and halted batches are outcomes: the database answered.
      const outcomes = await applyBatches(db, batches, { policy });
      breaker.recordSuccess();
      return outcomes;
    } catch (err) {
      breaker.recordFailure(err);
      throw err;
    }
  };
  const committer = new GroupCommitter({
    ...deps.groupCommit,
    isTransient: isTransientError,
    execute: async (batches) => {
      metrics?.transactionBatches.observe(batches.length);
      const started = performance.now();
      const outcomes = await withRetry(() => attempt(batches), {
        ...retry,
        isTransient: isTransientError,
        canRetry: () => !deps.stopping() && breaker.state === 'closed',
        onRetry: ({ attempt: n, delayMs, error }) => {
          metrics?.retries.inc({ kind: 'batch', cause: failureCause(error) }, batches.length);
          logger.warn(
            {
              partitionKeys: batches.map((b) => b.partitionKey),
              attempt: n,
              delayMs,
              err: error,
            },
            'transient database error; retrying the batches of the transaction',
          );
        },
      });
      if (logger.isLevelEnabled('info')) {
        let trades = 0;
        for (const b of batches) trades += b.items.length;
        logger.info(
          { partitions: batches.length, trades, ms: Math.round(performance.now() - started) },
          'committed transaction',
        );
      }
      return outcomes;
    },
  });
  return async (batch) => {
    const started = performance.now();
    // For the log lines about this batch (built only when one is written).
    const about = () => ({ partitionKey: batch.partitionKey, epoch: batch.epoch, ...seqRange(batch) });
    metrics?.batchSize.observe(batch.items.length);
    const span = startApplySpan(tracing, batch);
    try {
      const result = await span.run(() => committer.submit(batch));
      span.end();
      if (metrics) {
        const committedAt = Date.now();
        // Every series exists from the start (createWorkerMetrics): zeros need no call.
        if (result.applied) metrics.trades.inc({ outcome: 'applied' }, result.applied);
        if (result.deadLettered) metrics.trades.inc({ outcome: 'dead_lettered' }, result.deadLettered);
        if (result.duplicates) metrics.trades.inc({ outcome: 'duplicate' }, result.duplicates);
        if (result.skipped) metrics.trades.inc({ outcome: 'redelivered' }, result.skipped);
        for (const d of result.deadLetters) {
          metrics.deadLetters.inc({ reason_code: bounded(d.code, REASON_CODES, 'other') });
        }
        // The first `skipped` items were committed by an earlier delivery; the rest by this commit.
        for (const item of batch.items.slice(result.skipped)) {
          metrics.endToEndLatency.observe(Math.max(0, committedAt - item.enqueuedAt) / 1000);
        }
        finished('committed', started);
      }
      for (const d of result.deadLetters) {
        logger.warn(
          {
            partitionKey: batch.partitionKey,
            tradeId: d.tradeId,
            seq: d.seq,
            reasonCode: d.code,
            reason: d.reason,
          },
          `dead-lettered trade ${d.tradeId}: ${d.code}`,
        );
      }
      if (logger.isLevelEnabled('debug')) {
        logger.debug(
          {
            ...about(),
            tradeIds: batch.items.map((i) => i.tradeId),
            applied: result.applied,
            deadLettered: result.deadLettered,
            duplicates: result.duplicates,
            skipped: result.skipped,
            positionLastSeq: result.lastSeq,
            ms: Math.round(performance.now() - started),
          },
          'applied batch',
        );
      }
    } catch (err) {
      span.end(err);
      finished(
        err instanceof HaltPartitionError ? 'halted' : err instanceof FencedError ? 'fenced' : 'failed',
        started,
      );
      if (err instanceof FencedError) metrics?.leaseLosses.inc({ reason: 'fenced' });
      if (err instanceof HaltPartitionError) {
        // Logged at warn by the consumer's 'halted' event once Redis has it.
        logger.info(
          { ...about(), tradeIds: batch.items.map((i) => i.tradeId), reason: err.reason },
          'batch halts its partition',
        );
      } else if (err instanceof FencedError) {
        logger.warn(
          { ...about(), storedEpoch: err.storedEpoch },
          'batch refused by PostgreSQL: this worker lost its lease',
        );
        await deps
          .onFenced?.(batch.partitionKey, err.storedEpoch)
          .catch((e: unknown) =>
            logger.warn({ ...about(), err: e }, 'could not raise the Redis lease epoch'),
          );
      } else if (isTransientError(err)) {
        logger.warn(
          { ...about(), attempt: batch.attempt, err },
          'batch failed on a transient error; the partition will be retried',
        );
      } else {
        logger.error(
          { ...about(), attempt: batch.attempt, err },
          'batch failed on an unexpected error; the partition will be retried',
        );
      }
      throw err;
    }
  };
}

function logConsumerEvent(logger: Logger, e: ConsumerEvent): void {
  switch (e.type) {
    case 'halted':
      logger.warn(
        {
          partitionKey: e.partitionKey,
          tradeId: e.reason.tradeId,
          seq: e.reason.seq,
          reasonCode: e.reason.code,
          reason: e.reason.message,
        },
        `partition halted: ${e.reason.code}`,
      );
      return;
    case 'lease-lost':
      logger.warn({ partitionKey: e.partitionKey, why: e.why }, 'lease lost; the batch was not acked');
      return;
    case 'failed':
      logger.debug(
        { partitionKey: e.partitionKey, attempt: e.attempt, err: e.error },
        'batch failed; the partition will be retried after a backoff',
      );
      return;
    case 'stalled':
      logger.warn(
        { partitionKey: e.partitionKey },
        'took over an expired lease (its holder died, froze or lost Redis); draining the partition again from its head',
      );
      return;
    case 'acked':
      logger.debug(
        { partitionKey: e.partitionKey, epoch: e.epoch, firstSeq: e.firstSeq, lastSeq: e.lastSeq },
        'acked',
      );
      return;
    case 'yielded':
      logger.debug(
        { partitionKey: e.partitionKey, remaining: e.remaining },
        'budget spent; partition yielded',
      );
      return;
  }
}

function countConsumerEvent(metrics: WorkerMetrics, e: ConsumerEvent): void {
  switch (e.type) {
    case 'lease-lost':
      metrics.leaseLosses.inc({ reason: bounded(e.why, LEASE_LOSS_REASONS, 'epoch') });
      return;
    case 'halted':
      metrics.halts.inc({ reason_code: bounded(e.reason.code, REASON_CODES, 'other') });
      return;
    case 'failed':
      metrics.retries.inc({ kind: 'partition', cause: partitionFailureCause(e.error) });
      return;
    case 'stalled':
      metrics.leasesTakenOver.inc();
      return;
    default:
      return;
  }
}

/** Logs at most one line per `everyMs` for a noisy error source (a Redis outage reports every reconnect). */
function throttled(logger: Logger, msg: string, everyMs = 10_000): (err: unknown) => void {
  let last = 0;
  let suppressed = 0;
  return (err) => {
    const now = Date.now();
    if (now - last < everyMs) {
      suppressed++;
      return;
    }
    logger.warn({ err, suppressed }, msg);
    last = now;
    suppressed = 0;
  };
}

function withDeadline<T>(p: Promise<T>, ms: number): Promise<{ done: true; value: T } | { done: false }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<{ done: false }>((resolve) => {
    timer = setTimeout(() => resolve({ done: false }), Math.max(0, ms));
  });
  return Promise.race([p.then((value) => ({ done: true as const, value })), timeout]).finally(() =>
    clearTimeout(timer),
  );
}

const DEFAULT_RETRY = { attempts: 5, baseMs: 100, maxMs: 2000 } as const;
const DEFAULT_BREAKER = { threshold: 5, probeBaseMs: 1000, probeMaxMs: 10_000 } as const;

/**
 * Starts a worker: loads the configuration (every bad variable reported in
 * one ConfigError), connects, and starts draining. Resolves once started.
 */
export async function runWorker(
  env: Env = process.env,
  options: RunWorkerOptions = {},
): Promise<RunningWorker> {
  const config = loadWorkerConfig(env);
  // A bounded log buffer: when stdout cannot keep up, lines are dropped rather than memory grown.
  const { logger, stop: stopLogReports } = serviceLogger(options.logger, {
    level: config.logLevel,
    name: 'tradefleet-worker',
  });
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const retry = options.retry ?? DEFAULT_RETRY;
  const breakerTuning = options.breaker ?? DEFAULT_BREAKER;
  logger.info({ config: describeConfig(config) }, 'worker starting');

  const dbHandle = createDb({
    ...pgConnection(config),
    poolSize: config.pgPoolSize,
    applicationName: 'tradefleet-worker',
    logger,
  });
  // One connection for the queue's scripts, shared by the consumer (which
  // duplicates it for its blocking wait on the wake list) and the reconciler.
  // null: commands wait out a Redis restart instead of failing after 20 retries.
  const redis: Redis = createRedis(config, {
    maxRetriesPerRequest: null,
    enableAutoPipelining: true,
  });
  redis.on('error', throttled(logger, 'Redis connection error'));

  let stopping = false;
  const tracing = createTracing(config.tracingEnabled);
  const registry = createRegistry('worker');
  // The gauges read `consumer` and `breaker` (declared below) only when scraped.
  const metrics = createWorkerMetrics(registry, {
    activeDrains: () => consumer.activeDrains,
    breakerState: () => breaker.state,
    concurrency: config.concurrency,
  });
  const logSignalError = throttled(logger, 'could not read the queue signals for /metrics', 60_000);
  registerQueueMetrics(registry, () => readSignals(redis, consumer.keys), { onError: logSignalError });
  // The breaker's callbacks use `consumer` (declared below): they only run
  // after a batch failed, so after it exists.
  const breaker = new CircuitBreaker({
    probe: () => sql`select 1`.execute(dbHandle.db),
    isFailure: isConnectionError,
    ...breakerTuning,
    onStateChange: async (state: BreakerState, previous: BreakerState, info) => {
      if (state === 'open' && previous === 'closed') {
        logger.error(
          { err: info.error },
          'PostgreSQL unreachable: circuit open, taking no new partitions until it answers',
        );
        void consumer.pause();
      } else if (state === 'open') {
        logger.warn(
          { err: info.error, nextProbeMs: breaker.nextProbeDelayMs() },
          'PostgreSQL still unreachable',
        );
      } else if (state === 'closed') {
        logger.info('PostgreSQL reachable again: circuit closed, resuming');
        if (!stopping) consumer.resume();
      }
    },
    onError: (err) => logger.error({ err }, 'circuit breaker transition failed'),
  });

  const consumer = new PartitionConsumer({
    redis,
    namespace: config.namespace,
    concurrency: config.concurrency,
    batchSize: config.batchSize,
    budget: config.budget,
    lockDurationMs: config.lockDurationMs,
    stalledIntervalMs: config.stalledIntervalMs,
    dedupWindowSeconds: config.dedupWindowSeconds,
    ...(process.env.XP_CLAIM ? { claimSize: Number(process.env.XP_CLAIM) } : {}),
    handler: createBatchHandler({
      db: dbHandle.db,
      policy: config.permanentFailurePolicy,
      logger,
      breaker,
      retry,
      stopping: () => stopping,
      metrics,
      tracing,
      onFenced: (pk, storedEpoch) => raiseEpoch(redis, config.namespace, pk, storedEpoch),
      groupCommit: process.env.XP_INFLIGHT
        ? { maxInFlight: Number(process.env.XP_INFLIGHT) }
        : options.groupCommit,
    }),
    onEvent: (e) => {
      countConsumerEvent(metrics, e);
      logConsumerEvent(logger, e);
    },
    onError: throttled(logger, 'partition consumer: Redis error (retrying)'),
  });
  const reconciler = new Reconciler({
    redis,
    namespace: config.namespace,
    intervalMs: options.reconcileIntervalMs ?? 5000,
    onArmed: (pks) => {
      metrics.rearmed.inc(pks.length);
      logger.info(
        { partitionKeys: pks.slice(0, 50), count: pks.length },
        're-armed partitions that were neither ready nor leased',
      );
    },
    onError: throttled(logger, 'reconciler pass failed'),
  });
  reconciler.start();

  let metricsServer: MetricsServer | undefined;
  if (config.metricsPort > 0) {
    try {
      metricsServer = await startMetricsServer({
        registry,
        port: config.metricsPort,
        onError: throttled(logger, 'could not collect the metrics', 60_000),
      });
      logger.info({ url: `${metricsServer.url}/metrics` }, 'serving Prometheus metrics');
    } catch (err) {
      // Draining matters more than metrics: go on without them, loudly.
      logger.error(
        { err, port: config.metricsPort },
        `could not serve /metrics on METRICS_PORT=${config.metricsPort} (in use?): this worker runs without metrics; ` +
          'give each worker on one host its own METRICS_PORT, or 0 to turn it off',
      );
    }
  }

  let closing: Promise<{ forced: boolean }> | undefined;
  const close = (): Promise<{ forced: boolean }> =>
    (closing ??= (async () => {
      stopping = true;
      const deadline = Date.now() + config.shutdownTimeoutMs;
      logger.info({ timeoutMs: config.shutdownTimeoutMs }, 'shutting down: finishing the batches in hand');
      breaker.close();
      let forced = false;
      const reconcilerClosed = await withDeadline(reconciler.close(), deadline - Date.now());
      // The consumer stops fetching and hands each partition back at a batch boundary.
      const consumerClosed = reconcilerClosed.done
        ? await withDeadline(consumer.close(), deadline - Date.now())
        : ({ done: false } as const);
      await metricsServer?.close();
      if (consumerClosed.done) {
        await redis.quit().catch(() => redis.disconnect());
      } else {
        forced = true;
        logger.warn(
          'shutdown deadline reached: dropping the batches in hand (their leases expire and other workers resume them)',
        );
        redis.disconnect();
      }
      // pool.end() waits for checked-out clients; a query stuck on a dead server must not hold the exit.
      const dbClosed = await withDeadline(dbHandle.close(), Math.max(1000, deadline - Date.now()));
      if (!dbClosed.done) forced = true;
      logger.info({ forced }, 'worker stopped');
      stopLogReports();
      return { forced };
    })());

  if (options.handleSignals ?? true) {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        logger.warn({ signal }, 'second signal: exiting now');
        exit(1);
        return;
      }
      logger.info({ signal }, 'signal received');
      close().then(
        ({ forced }) => exit(forced ? 1 : 0),
        (err) => {
          logger.error({ err }, 'shutdown failed');
          exit(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    const early = takeEarlySignal();
    if (early) onSignal(early);
  }

  logger.info(
    { namespace: config.namespace, concurrency: config.concurrency, policy: config.permanentFailurePolicy },
    'worker started',
  );
  return { config, logger, consumer, reconciler, breaker, registry, metricsServer, close };
}

if (require.main === module) {
  runWorker().catch((err: unknown) => {
    const logger = createLogger({ level: 'info', name: 'tradefleet-worker' });
    if (err instanceof ConfigError) logger.fatal({ problems: err.problems }, err.message);
    else logger.fatal({ err }, 'worker failed to start');
    process.exit(1);
  });
}
