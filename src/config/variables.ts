/**
 * Every environment variable tradefleet reads, in one place. The README
 * configuration table is generated from this file (`npx tsx scripts/config-table.ts --write`)
 * and a unit test fails when the two differ.
 */
import { boolean, durationMs, int, oneOf, string, url, type CrossCheck, type Values } from './schema';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const PERMANENT_FAILURE_POLICIES = ['dead-letter', 'halt'] as const;
export type PermanentFailurePolicy = (typeof PERMANENT_FAILURE_POLICIES)[number];

/** The processes that read configuration; each reads only its own variables. */
export type ProcessName = 'producer' | 'worker' | 'migrate';

export const configSchema = {
  REDIS_URL: url({
    protocols: ['redis', 'rediss'],
    default: 'redis://127.0.0.1:6379',
    description: 'Redis holding the partition lists, the drain-token queue and the scaling signals.',
  }),
  DATABASE_URL: url({
    protocols: ['postgres', 'postgresql'],
    default: 'postgres://postgres@127.0.0.1:5432/tradefleet',
    description: 'PostgreSQL holding positions, applied trades and dead letters.',
  }),
  PORT: int({ min: 1, max: 65535, default: 8080, description: 'TCP port of the producer HTTP API.' }),
  HOST: string({
    default: '0.0.0.0',
    pattern: /^\S+$/,
    patternText: 'a host name or IP address without spaces',
    description: 'Address the producer HTTP API listens on.',
  }),
  LOG_LEVEL: oneOf(LOG_LEVELS, {
    default: 'info',
    description: 'Minimum level of the JSON log lines on stdout.',
  }),
  TRADEFLEET_NAMESPACE: string({
    default: 'tradefleet',
    pattern: /^[a-z0-9-]{1,40}$/,
    patternText: '1 to 40 characters from a-z, 0-9 and -',
    description: 'Redis key namespace of the queue; deployments sharing one Redis need different ones.',
  }),
  WORKER_CONCURRENCY: int({
    min: 1,
    max: 1000,
    default: 16,
    description: 'Partitions one worker drains at once (the C of the scaling formula).',
  }),
  WORKER_BATCH_SIZE: int({
    min: 1,
    max: 1000,
    default: 64,
    description: 'Trades applied per PostgreSQL transaction.',
  }),
  WORKER_BUDGET: int({
    min: 1,
    max: 1_000_000,
    default: 512,
    description:
      'Trades one drain token may apply before it yields to other partitions; at least WORKER_BATCH_SIZE.',
  }),
  LOCK_DURATION_MS: durationMs({
    min: 1000,
    max: 600_000,
    default: 5000,
    description:
      'BullMQ lock (lease) duration of a drain token; a dead worker loses its partition after this.',
  }),
  STALLED_INTERVAL_MS: durationMs({
    min: 100,
    max: 600_000,
    default: 2500,
    description: 'How often workers look for stalled drain tokens; at most LOCK_DURATION_MS.',
  }),
  PERMANENT_FAILURE_POLICY: oneOf(PERMANENT_FAILURE_POLICIES, {
    default: 'dead-letter',
    description:
      'What a trade the domain rejects does: dead-letter records it and goes on; halt stops its partition for an operator.',
  }),
  DEDUP_WINDOW_SECONDS: int({
    min: 1,
    max: 31_536_000,
    default: 86400,
    description:
      'How long an applied tradeId is remembered in Redis to detect duplicate enqueues (producer and worker must agree); PostgreSQL still refuses a duplicate effect after that.',
  }),
  MAX_BACKLOG: int({
    min: 0,
    max: 1_000_000_000,
    default: 1_000_000,
    description: 'Unapplied trades above which the producer answers 429; 0 means unlimited.',
  }),
  BATCH_MAX_TRADES: int({
    min: 1,
    max: 100_000,
    default: 1000,
    description: 'Largest number of trades accepted in one POST /v1/trades/batch.',
  }),
  BODY_LIMIT_BYTES: int({
    min: 1024,
    max: 104_857_600,
    default: 1_048_576,
    description: 'Largest HTTP request body the producer accepts.',
  }),
  PG_POOL_SIZE: int({ min: 1, max: 1000, default: 10, description: 'PostgreSQL connections per process.' }),
  METRICS_PORT: int({
    min: 0,
    max: 65535,
    default: 9464,
    description:
      "TCP port of the worker's Prometheus endpoint (GET /metrics, on all interfaces); 0 turns it off. The producer serves /metrics on PORT.",
  }),
  TRACING_ENABLED: boolean({
    default: false,
    description:
      'Create OpenTelemetry spans and carry the trace context (traceparent) from the producer request through the queue to the worker transaction. Spans are exported by the OpenTelemetry SDK the process is started with (none by default).',
  }),
  DASHBOARD_USER: string({
    default: 'admin',
    pattern: /^[^\s:]{1,64}$/,
    patternText: '1 to 64 characters without spaces or ":"',
    description: 'User name of the dashboard (/dashboard on the producer).',
  }),
  DASHBOARD_PASSWORD: string({
    default: '',
    secret: true,
    pattern: /^(?:|[\s\S]{12,256})$/,
    patternText: '12 to 256 characters',
    description:
      'Password of the dashboard; unset, the producer serves no dashboard. Compared in constant time; sessions are signed with a key derived from it, so changing it logs everyone out.',
  }),
  DASHBOARD_READ_ONLY: boolean({
    default: false,
    description:
      'Dashboard without operator actions: resume, skip-head, replay and bull-board changes answer 403.',
  }),
  SHUTDOWN_TIMEOUT_MS: durationMs({
    min: 0,
    max: 3_600_000,
    default: 20000,
    description:
      'Graceful-shutdown deadline after SIGTERM; keep it below the pod terminationGracePeriodSeconds.',
  }),
};

export type ConfigSchema = typeof configSchema;
export type VariableName = keyof ConfigSchema;
export type ConfigValues = Values<ConfigSchema>;

export const PRODUCER_VARIABLES = [
  'REDIS_URL',
  'DATABASE_URL',
  'PORT',
  'HOST',
  'LOG_LEVEL',
  'TRADEFLEET_NAMESPACE',
  'DEDUP_WINDOW_SECONDS',
  'MAX_BACKLOG',
  'BATCH_MAX_TRADES',
  'BODY_LIMIT_BYTES',
  'PG_POOL_SIZE',
  'SHUTDOWN_TIMEOUT_MS',
  'TRACING_ENABLED',
  'DASHBOARD_USER',
  'DASHBOARD_PASSWORD',
  'DASHBOARD_READ_ONLY',
] as const satisfies readonly VariableName[];

export const WORKER_VARIABLES = [
  'REDIS_URL',
  'DATABASE_URL',
  'LOG_LEVEL',
  'TRADEFLEET_NAMESPACE',
  'WORKER_CONCURRENCY',
  'WORKER_BATCH_SIZE',
  'WORKER_BUDGET',
  'LOCK_DURATION_MS',
  'STALLED_INTERVAL_MS',
  'PERMANENT_FAILURE_POLICY',
  'DEDUP_WINDOW_SECONDS',
  'PG_POOL_SIZE',
  'SHUTDOWN_TIMEOUT_MS',
  'METRICS_PORT',
  'TRACING_ENABLED',
] as const satisfies readonly VariableName[];

export const MIGRATE_VARIABLES = ['DATABASE_URL', 'LOG_LEVEL'] as const satisfies readonly VariableName[];

export const VARIABLES_BY_PROCESS: Readonly<Record<ProcessName, readonly VariableName[]>> = {
  producer: PRODUCER_VARIABLES,
  worker: WORKER_VARIABLES,
  migrate: MIGRATE_VARIABLES,
};

/** Rules across variables; reported together with the per-variable problems. */
export const crossChecks: readonly CrossCheck<ConfigValues>[] = [
  {
    variables: ['STALLED_INTERVAL_MS', 'LOCK_DURATION_MS'],
    check: (v) =>
      v.STALLED_INTERVAL_MS <= v.LOCK_DURATION_MS
        ? undefined
        : `STALLED_INTERVAL_MS=${v.STALLED_INTERVAL_MS} is greater than LOCK_DURATION_MS=${v.LOCK_DURATION_MS}: ` +
          `a stalled drain token would not be noticed before its lock expired. ` +
          `Fix: set STALLED_INTERVAL_MS to at most ${v.LOCK_DURATION_MS}, or raise LOCK_DURATION_MS.`,
  },
  {
    variables: ['WORKER_BUDGET', 'WORKER_BATCH_SIZE'],
    check: (v) =>
      v.WORKER_BUDGET >= v.WORKER_BATCH_SIZE
        ? undefined
        : `WORKER_BUDGET=${v.WORKER_BUDGET} is smaller than WORKER_BATCH_SIZE=${v.WORKER_BATCH_SIZE}: ` +
          `a drain token could not apply even one full batch. ` +
          `Fix: set WORKER_BUDGET to at least ${v.WORKER_BATCH_SIZE}, or lower WORKER_BATCH_SIZE.`,
  },
];
