/**
 * One typed, validated configuration per process, parsed once at boot by that
 * process's main.ts and passed down; nothing else reads process.env.
 */
import { maskUrl, parseVariables, type CrossCheck, type Schema, type Values } from './schema';
import {
  configSchema,
  crossChecks,
  MIGRATE_VARIABLES,
  PRODUCER_VARIABLES,
  WORKER_VARIABLES,
  type LogLevel,
  type PermanentFailurePolicy,
  type VariableName,
} from './variables';

export * from './schema';
export * from './variables';
export { renderConfigTable } from './docs';

export type Env = Readonly<Record<string, string | undefined>>;

export interface ProducerConfig {
  readonly redisUrl: string;
  readonly databaseUrl: string;
  readonly port: number;
  readonly host: string;
  readonly logLevel: LogLevel;
  readonly namespace: string;
  readonly dedupWindowSeconds: number;
  /** 0 means unlimited. */
  readonly maxBacklog: number;
  readonly batchMaxTrades: number;
  readonly bodyLimitBytes: number;
  readonly pgPoolSize: number;
  readonly shutdownTimeoutMs: number;
  readonly tracingEnabled: boolean;
  readonly dashboard: DashboardConfig;
}

/** The dashboard's access: off without a password. */
export interface DashboardConfig {
  readonly enabled: boolean;
  readonly user: string;
  /** Never log it: describeConfig hides it. */
  readonly password: string;
  readonly readOnly: boolean;
}

export interface WorkerConfig {
  readonly redisUrl: string;
  readonly databaseUrl: string;
  readonly logLevel: LogLevel;
  readonly namespace: string;
  readonly concurrency: number;
  readonly batchSize: number;
  readonly budget: number;
  readonly lockDurationMs: number;
  readonly stalledIntervalMs: number;
  readonly permanentFailurePolicy: PermanentFailurePolicy;
  /** How long applied trade ids are remembered in Redis for duplicate detection (the worker writes the markers). */
  readonly dedupWindowSeconds: number;
  readonly pgPoolSize: number;
  readonly shutdownTimeoutMs: number;
  /** Port of the /metrics endpoint; 0 = none. */
  readonly metricsPort: number;
  readonly tracingEnabled: boolean;
}

export interface MigrateConfig {
  readonly databaseUrl: string;
  readonly logLevel: LogLevel;
}

function pick<K extends VariableName>(names: readonly K[]): Pick<typeof configSchema, K> {
  const out: Partial<Record<K, unknown>> = {};
  for (const n of names) out[n] = configSchema[n];
  return out as Pick<typeof configSchema, K>;
}

function parse<S extends Schema>(schema: S, env: Env, context: string): Values<S> {
  // Checks naming a variable outside `schema` are skipped at run time (see CrossCheck).
  return parseVariables(schema, env, crossChecks as unknown as readonly CrossCheck<Values<S>>[], context);
}

/** @throws ConfigError listing every bad or missing variable. */
export function loadProducerConfig(env: Env = process.env): ProducerConfig {
  const v = parse(pick(PRODUCER_VARIABLES), env, 'producer configuration');
  return Object.freeze({
    redisUrl: v.REDIS_URL,
    databaseUrl: v.DATABASE_URL,
    port: v.PORT,
    host: v.HOST,
    logLevel: v.LOG_LEVEL,
    namespace: v.TRADEFLEET_NAMESPACE,
    dedupWindowSeconds: v.DEDUP_WINDOW_SECONDS,
    maxBacklog: v.MAX_BACKLOG,
    batchMaxTrades: v.BATCH_MAX_TRADES,
    bodyLimitBytes: v.BODY_LIMIT_BYTES,
    pgPoolSize: v.PG_POOL_SIZE,
    shutdownTimeoutMs: v.SHUTDOWN_TIMEOUT_MS,
    tracingEnabled: v.TRACING_ENABLED,
    dashboard: Object.freeze({
      enabled: v.DASHBOARD_PASSWORD !== '',
      user: v.DASHBOARD_USER,
      password: v.DASHBOARD_PASSWORD,
      readOnly: v.DASHBOARD_READ_ONLY,
    }),
  });
}

/** @throws ConfigError listing every bad or missing variable. */
export function loadWorkerConfig(env: Env = process.env): WorkerConfig {
  const v = parse(pick(WORKER_VARIABLES), env, 'worker configuration');
  return Object.freeze({
    redisUrl: v.REDIS_URL,
    databaseUrl: v.DATABASE_URL,
    logLevel: v.LOG_LEVEL,
    namespace: v.TRADEFLEET_NAMESPACE,
    concurrency: v.WORKER_CONCURRENCY,
    batchSize: v.WORKER_BATCH_SIZE,
    budget: v.WORKER_BUDGET,
    lockDurationMs: v.LOCK_DURATION_MS,
    stalledIntervalMs: v.STALLED_INTERVAL_MS,
    permanentFailurePolicy: v.PERMANENT_FAILURE_POLICY,
    dedupWindowSeconds: v.DEDUP_WINDOW_SECONDS,
    pgPoolSize: v.PG_POOL_SIZE,
    shutdownTimeoutMs: v.SHUTDOWN_TIMEOUT_MS,
    metricsPort: v.METRICS_PORT,
    tracingEnabled: v.TRACING_ENABLED,
  });
}

/** @throws ConfigError listing every bad or missing variable. */
export function loadMigrateConfig(env: Env = process.env): MigrateConfig {
  const v = parse(pick(MIGRATE_VARIABLES), env, 'migrate configuration');
  return Object.freeze({ databaseUrl: v.DATABASE_URL, logLevel: v.LOG_LEVEL });
}

/**
 * A copy of a loaded configuration that is safe to log: URL passwords are masked.
 * Log this at boot, never the config object itself.
 */
export function describeConfig<C extends object>(config: C): Record<keyof C, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) {
    if (typeof v === 'string' && /Url$/.test(k)) out[k] = maskUrl(v);
    else if (typeof v === 'string' && /password|secret|token/i.test(k)) out[k] = v === '' ? '' : '(hidden)';
    else if (v !== null && typeof v === 'object' && !Array.isArray(v)) out[k] = describeConfig(v);
    else out[k] = v;
  }
  return out as Record<keyof C, unknown>;
}
