/**
 * Every Prometheus metric of tradefleet, defined in this one module: the
 * producer, the worker and the dashboard import their metrics from here, and
 * the alerting rules and the Grafana dashboard (cdk8s/constructs/monitoring.ts)
 * are checked against the names defined here (test/unit/observability-metrics.test.ts).
 * docs/metrics.md is generated from it (`npx tsx src/observability/metrics-doc.ts --write`).
 *
 * Names start with `tradefleet_`. Every label has a closed set of values,
 * listed below and initialized to zero so that rate() and absent-based alerts
 * work from the first scrape. No label ever carries a partition key, a trade
 * id or a raw URL: one series per partition would grow without bound (the
 * dashboard shows the hottest partitions instead).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

import type { QueueSignals } from '../queue/signals';
import type { BreakerState } from '../worker/circuit-breaker';

export const METRIC_PREFIX = 'tradefleet_';

// ---------------------------------------------------------------------------
// Label values

/** What happened to one trade offered to the producer. */
export const TRADE_OUTCOMES = [
  /** Newly enqueued (seq assigned). */
  'queued',
  /** Same tradeId, same payload as an earlier accepted trade. */
  'duplicate',
  /** Same tradeId, different payload. */
  'conflict',
  /** Failed validation. */
  'invalid',
  /** Refused by backpressure (MAX_BACKLOG). */
  'backlog_full',
  /** Redis unavailable: the outcome is unknown to the producer; the client retries. */
  'unavailable',
] as const;
export type TradeOutcome = (typeof TRADE_OUTCOMES)[number];

/** What a worker did with one trade it was handed. */
export const WORKER_TRADE_OUTCOMES = [
  /** Folded into its position. */
  'applied',
  /** Refused for good and recorded as a dead letter (reason in tradefleet_worker_dead_letters_total). */
  'dead_lettered',
  /** Its tradeId was already applied or dead-lettered with the same payload: no effect. */
  'duplicate',
  /** At or below the position's last_seq: committed by an earlier delivery (a redelivery after a crash). */
  'redelivered',
] as const;
export type WorkerTradeOutcome = (typeof WORKER_TRADE_OUTCOMES)[number];

/**
 * Why a trade is dead-lettered or a partition halted: the worker's rejection
 * and halt codes (src/worker/apply.ts) and the dashboard's `operator_skip`.
 * Anything else is counted as `other`.
 */
export const REASON_CODES = [
  'duplicate_trade',
  'unknown_ref',
  'ref_cancelled',
  'currency_mismatch',
  'invalid_payload',
  'conflict',
  'seq_gap',
  'seq_regression',
  'invalid_partition_key',
  'operator_skip',
  'other',
] as const;
export type ReasonCode = (typeof REASON_CODES)[number];

/** Why work was retried (see retryCause in src/worker/retry.ts). */
export const RETRY_CAUSES = [
  'connection',
  'deadlock',
  'serialization',
  'redis_busy',
  'lease_lost',
  'fenced',
  'other',
] as const;
export type RetryCause = (typeof RETRY_CAUSES)[number];

/**
 * `batch`: an in-place retry of a PostgreSQL transaction while the lease is
 * held; `partition`: a batch failed, the lease was released and the partition
 * is claimed again (by any worker) after a capped exponential backoff.
 */
export const RETRY_KINDS = ['batch', 'partition'] as const;
export type RetryKind = (typeof RETRY_KINDS)[number];

/**
 * How a lease was lost: `epoch`, the lease expired and another lease of the
 * partition was taken since (Redis refused the ack, release or halt); `head`, the partition's
 * head is no longer the batch's trades; `fenced`, PostgreSQL holds a newer
 * epoch for the partition (it refused the commit).
 */
export const LEASE_LOSS_REASONS = ['epoch', 'head', 'fenced'] as const;
export type LeaseLossReason = (typeof LEASE_LOSS_REASONS)[number];

/** How one batch handler call ended. */
export const BATCH_RESULTS = ['committed', 'halted', 'fenced', 'failed'] as const;
export type BatchResult = (typeof BATCH_RESULTS)[number];

export const BREAKER_STATES: readonly BreakerState[] = ['closed', 'open', 'half-open'];

/** The dashboard's operator actions and how they ended. */
export const DASHBOARD_ACTIONS = ['resume', 'retry_head', 'halt', 'skip_head', 'replay'] as const;
export type DashboardAction = (typeof DASHBOARD_ACTIONS)[number];
export const DASHBOARD_ACTION_RESULTS = ['done', 'refused', 'failed'] as const;
export type DashboardActionResult = (typeof DASHBOARD_ACTION_RESULTS)[number];

/** A value of `allowed`, or `fallback` for anything else: labels stay bounded whatever the input. */
export function bounded<const T extends string>(value: string, allowed: readonly T[], fallback: T): T {
  return (allowed as readonly string[]).includes(value) ? (value as T) : fallback;
}

/** Label value of requests that matched no route. */
export const UNMATCHED_ROUTE = 'unmatched';

const METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']);

/** `2xx`, `4xx`, ...: a bounded label for an HTTP status. */
export function statusClass(status: number): string {
  return status >= 100 && status < 600 ? `${Math.floor(status / 100)}xx` : 'other';
}

/** The method as a bounded label value. */
export function methodLabel(method: string): string {
  return METHODS.has(method) ? method : 'other';
}

// ---------------------------------------------------------------------------
// Registries

export type ProcessKind = 'producer' | 'worker';

/**
 * A registry with the Node.js process metrics (CPU, memory, event loop lag,
 * GC) under `tradefleet_<process>_`.
 */
export function createRegistry(process: ProcessKind): Registry {
  const registry = new Registry();
  const prefix = `${METRIC_PREFIX}${process}_`;
  collectDefaultMetrics({ register: registry, prefix });
  // prom-client names three gauges `..._total`, which `promtool check metrics`
  // rejects (only counters end in _total); the same numbers are in
  // nodejs_active_handles, nodejs_active_requests and nodejs_active_resources by type.
  for (const name of [
    'nodejs_active_handles_total',
    'nodejs_active_requests_total',
    'nodejs_active_resources_total',
  ]) {
    registry.removeSingleMetric(`${prefix}${name}`);
  }
  return registry;
}

// ---------------------------------------------------------------------------
// Producer

export interface ProducerMetrics {
  /** `tradefleet_producer_trades_total{outcome}`: `queued` is the enqueued count. */
  readonly trades: Counter<'outcome'>;
  /** `tradefleet_producer_http_request_duration_seconds{method,route,status_class}` */
  readonly requestDuration: Histogram<'method' | 'route' | 'status_class'>;
}

/** Registers the producer metrics on `registry`; call once per registry. */
export function createProducerMetrics(registry: Registry): ProducerMetrics {
  const trades = new Counter({
    name: 'tradefleet_producer_trades_total',
    help: 'Trades offered to the producer, by outcome (queued, duplicate, conflict, invalid, backlog_full, unavailable).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  for (const outcome of TRADE_OUTCOMES) trades.inc({ outcome }, 0);

  const requestDuration = new Histogram({
    name: 'tradefleet_producer_http_request_duration_seconds',
    help: 'Duration of producer HTTP requests, by method, route pattern and status class.',
    labelNames: ['method', 'route', 'status_class'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  return { trades, requestDuration };
}

// ---------------------------------------------------------------------------
// Worker

export interface WorkerMetrics {
  readonly trades: Counter<'outcome'>;
  readonly deadLetters: Counter<'reason_code'>;
  readonly halts: Counter<'reason_code'>;
  readonly batchSize: Histogram<string>;
  readonly transactionBatches: Histogram<string>;
  readonly batchDuration: Histogram<'result'>;
  readonly endToEndLatency: Histogram<string>;
  readonly retries: Counter<'kind' | 'cause'>;
  readonly leaseLosses: Counter<'reason'>;
  readonly leasesTakenOver: Counter<string>;
  readonly rearmed: Counter<string>;
}

/** What the worker's gauges read when scraped. */
export interface WorkerLiveState {
  /** Partitions leased and being drained now (PartitionConsumer.activeDrains). */
  activeDrains(): number;
  breakerState(): BreakerState;
  /** WORKER_CONCURRENCY. */
  readonly concurrency: number;
}

/** Registers the worker metrics on `registry`; call once per registry. */
export function createWorkerMetrics(registry: Registry, live: WorkerLiveState): WorkerMetrics {
  const registers = [registry];
  const trades = new Counter({
    name: 'tradefleet_worker_trades_total',
    help: 'Trades a worker committed, by outcome (applied, dead_lettered, duplicate, redelivered).',
    labelNames: ['outcome'] as const,
    registers,
  });
  for (const outcome of WORKER_TRADE_OUTCOMES) trades.inc({ outcome }, 0);

  const deadLetters = new Counter({
    name: 'tradefleet_worker_dead_letters_total',
    help: 'Trades dead-lettered by the worker, by reason code.',
    labelNames: ['reason_code'] as const,
    registers,
  });
  const halts = new Counter({
    name: 'tradefleet_worker_partition_halts_total',
    help: 'Partitions halted by the worker (halt policy, seq gap or regression), by reason code.',
    labelNames: ['reason_code'] as const,
    registers,
  });
  for (const reason_code of REASON_CODES) {
    deadLetters.inc({ reason_code }, 0);
    halts.inc({ reason_code }, 0);
  }

  const batchSize = new Histogram({
    name: 'tradefleet_worker_batch_size',
    help: 'Trades per batch of one partition handed to the worker (several batches may share a transaction, see tradefleet_worker_transaction_batches).',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000],
    registers,
  });
  const transactionBatches = new Histogram({
    name: 'tradefleet_worker_transaction_batches',
    help:
      'Batches (one per partition) committed together in one PostgreSQL transaction by the group commit; ' +
      'near 1 when idle, larger under load.',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128],
    registers,
  });
  const batchDuration = new Histogram({
    name: 'tradefleet_worker_batch_duration_seconds',
    help: 'Time to apply one batch, in-place retries included, by result (committed, halted, fenced, failed).',
    labelNames: ['result'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers,
  });
  for (const result of BATCH_RESULTS) batchDuration.zero({ result });
  const endToEndLatency = new Histogram({
    name: 'tradefleet_worker_end_to_end_latency_seconds',
    help: 'Time from the enqueue (Redis clock) to the commit of the trade in PostgreSQL (worker clock), per trade.',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800],
    registers,
  });
  const retries = new Counter({
    name: 'tradefleet_worker_retries_total',
    help: 'Retries by kind (batch: the transaction retried in place, lease held; partition: the lease released and the partition claimed again after a backoff) and cause.',
    labelNames: ['kind', 'cause'] as const,
    registers,
  });
  for (const kind of RETRY_KINDS) for (const cause of RETRY_CAUSES) retries.inc({ kind, cause }, 0);

  const leaseLosses = new Counter({
    name: 'tradefleet_worker_lease_losses_total',
    help: 'Partition leases lost by this worker (its batch was not acked), by reason (epoch, head, fenced).',
    labelNames: ['reason'] as const,
    registers,
  });
  for (const reason of LEASE_LOSS_REASONS) leaseLosses.inc({ reason }, 0);

  const leasesTakenOver = new Counter({
    name: 'tradefleet_worker_leases_taken_over_total',
    help:
      'Expired partition leases this worker took over (their holder died, froze or could not reach Redis to extend them); ' +
      'each such partition is drained again from its head under a new epoch, which fences the old holder.',
    registers,
  });

  const rearmed = new Counter({
    name: 'tradefleet_worker_reconciler_rearmed_total',
    help: 'Partitions the reconciler made ready again: they had trades but were neither ready, leased nor halted (state changed from outside).',
    registers,
  });

  new Gauge({
    name: 'tradefleet_worker_circuit_breaker_state',
    help: 'State of the PostgreSQL circuit breaker: 1 for the current state (closed, open, half-open), 0 for the others.',
    labelNames: ['state'] as const,
    registers,
    collect() {
      const current = live.breakerState();
      for (const state of BREAKER_STATES) this.set({ state }, state === current ? 1 : 0);
    },
  });
  new Gauge({
    name: 'tradefleet_worker_active_drains',
    help: 'Partitions this worker is draining now: the part of its concurrency in use.',
    registers,
    collect() {
      this.set(live.activeDrains());
    },
  });
  new Gauge({
    name: 'tradefleet_worker_concurrency',
    help: 'Partitions this worker may drain at once (WORKER_CONCURRENCY); count() of it is the number of workers.',
    registers,
    collect() {
      this.set(live.concurrency);
    },
  });

  return {
    trades,
    deadLetters,
    halts,
    batchSize,
    transactionBatches,
    batchDuration,
    endToEndLatency,
    retries,
    leaseLosses,
    leasesTakenOver,
    rearmed,
  };
}

// ---------------------------------------------------------------------------
// The queue's own numbers (producer and worker)

export interface QueueMetricsOptions {
  /** A scrape within this long of the previous read reuses it. @default 2000 */
  readonly cacheMs?: number;
  /** A read that takes longer counts as failed, so that a scrape never hangs on Redis. @default 1000 */
  readonly timeoutMs?: number;
  /** Called when a read fails (the gauges keep their last values, the error counter goes up). */
  readonly onError?: (err: unknown) => void;
  /** @default Date.now */
  readonly now?: () => number;
}

/**
 * Gauges of the scaling signals, read from Redis when scraped (one MULTI for
 * all of them, cached for `cacheMs` so that several scrapers or a scrape
 * storm cost one round trip). Every process exposes the same queue-wide
 * numbers: aggregate with max(), not sum().
 */
export function registerQueueMetrics(
  registry: Registry,
  read: () => Promise<QueueSignals>,
  opts: QueueMetricsOptions = {},
): void {
  const cacheMs = opts.cacheMs ?? 2000;
  const timeoutMs = opts.timeoutMs ?? 1000;
  const now = opts.now ?? Date.now;
  const registers = [registry];
  let last: { at: number; value: Promise<QueueSignals | undefined> } | undefined;
  const errors = new Counter({
    name: 'tradefleet_queue_signal_read_errors_total',
    help: 'Scrapes whose read of the queue signals from Redis failed (the queue gauges then keep their previous values).',
    registers,
  });
  const signals = (): Promise<QueueSignals | undefined> => {
    const t = now();
    if (!last || t - last.at >= cacheMs) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`reading the queue signals took more than ${timeoutMs} ms`)),
          timeoutMs,
        );
      });
      last = {
        at: t,
        value: Promise.race([read(), timeout])
          .finally(() => clearTimeout(timer))
          .catch((err: unknown) => {
            errors.inc();
            opts.onError?.(err);
            return undefined;
          }),
      };
    }
    return last.value;
  };
  const gauge = (name: string, help: string, pick: (s: QueueSignals) => number) =>
    new Gauge({
      name,
      help,
      registers,
      async collect() {
        const s = await signals();
        if (s) this.set(pick(s));
      },
    });
  gauge(
    'tradefleet_queue_backlog',
    'Unapplied trades in the queue (halted partitions included): the backlog signal KEDA reads.',
    (s) => s.backlog,
  );
  gauge(
    'tradefleet_queue_pending_partitions',
    'Partitions with unapplied trades, in flight included, halted excluded: the parallelism the fleet can use.',
    (s) => s.pendingPartitions,
  );
  gauge(
    'tradefleet_queue_oldest_waiting_age_seconds',
    'Age of the oldest unapplied trade at the head of a pending partition (Redis clock); 0 when idle.',
    (s) => s.oldestAgeMs / 1000,
  );
  gauge(
    'tradefleet_queue_halted_partitions',
    'Partitions halted for an operator (their trades wait until resumed or skipped).',
    (s) => s.haltedPartitions,
  );
}

// ---------------------------------------------------------------------------
// Dashboard (served by the producer)

export interface DashboardMetrics {
  readonly actions: Counter<'action' | 'result'>;
}

export function createDashboardMetrics(registry: Registry): DashboardMetrics {
  const actions = new Counter({
    name: 'tradefleet_dashboard_actions_total',
    help: 'Operator actions taken on the dashboard (resume, retry_head, halt, skip_head, replay), by result (done, refused, failed).',
    labelNames: ['action', 'result'] as const,
    registers: [registry],
  });
  for (const action of DASHBOARD_ACTIONS)
    for (const result of DASHBOARD_ACTION_RESULTS) actions.inc({ action, result }, 0);
  return { actions };
}

// ---------------------------------------------------------------------------
// The catalogue

export interface MetricDescription {
  readonly name: string;
  readonly type: string;
  readonly help: string;
  readonly labels: readonly string[];
  /** Which processes expose it. */
  readonly processes: readonly ProcessKind[];
}

/**
 * Every metric tradefleet exposes, process metrics included, built on
 * throw-away registries (nothing is read or served).
 */
export function describeMetrics(): MetricDescription[] {
  const noRead = () => Promise.reject(new Error('not read'));
  const producer = createRegistry('producer');
  createProducerMetrics(producer);
  createDashboardMetrics(producer);
  registerQueueMetrics(producer, noRead);
  const worker = createRegistry('worker');
  createWorkerMetrics(worker, { activeDrains: () => 0, breakerState: () => 'closed', concurrency: 1 });
  registerQueueMetrics(worker, noRead);
  const byName = new Map<string, MetricDescription>();
  for (const [process, registry] of [
    ['producer', producer],
    ['worker', worker],
  ] as const) {
    for (const m of registry.getMetricsAsArray()) {
      const seen = byName.get(m.name);
      const labels = ((m as unknown as { labelNames?: string[] }).labelNames ?? []).slice();
      byName.set(m.name, {
        name: m.name,
        type: String((m as unknown as { type: string }).type),
        help: (m as unknown as { help: string }).help,
        labels,
        processes: seen ? [...seen.processes, process] : [process],
      });
    }
  }
  return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * The series names a metric produces in the exposition: a histogram's
 * `_bucket`, `_sum` and `_count`, the others their own name.
 */
export function seriesNames(m: Pick<MetricDescription, 'name' | 'type'>): string[] {
  return m.type === 'histogram'
    ? [`${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`]
    : m.type === 'summary'
      ? [m.name, `${m.name}_sum`, `${m.name}_count`]
      : [m.name];
}
