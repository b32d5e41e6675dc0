/**
 * One typed, validated configuration per process, parsed once at boot by that
 * process's main.ts and passed down; nothing else reads process.env.
 */
import { collectTokens, readCaFile, readSecretFile } from './files';
import {
  ConfigError,
  maskUrl,
  parseVariables,
  type ConfigProblem,
  type CrossCheck,
  type Schema,
  type Values,
} from './schema';
import {
  configSchema,
  crossChecks,
  MIGRATE_VARIABLES,
  PRODUCER_VARIABLES,
  WORKER_VARIABLES,
  type DatabaseSslMode,
  type LogLevel,
  type PermanentFailurePolicy,
  type VariableName,
} from './variables';

export * from './schema';
export * from './variables';
export { renderConfigTable } from './docs';

export type Env = Readonly<Record<string, string | undefined>>;

/** How to reach Redis: the URL, the password that overrides the URL's, TLS. Used by src/config/connections.ts. */
export interface RedisConnectionConfig {
  /** May carry a password: log it only through describeConfig. */
  readonly redisUrl: string;
  /** REDIS_PASSWORD or the content of REDIS_PASSWORD_FILE; absent: the URL's password, if any. */
  readonly redisPassword?: string;
  /** Applies to rediss:// URLs. */
  readonly redisTls: {
    readonly caFile?: string;
    /** The content of caFile, read at start-up. */
    readonly caPem?: string;
    readonly rejectUnauthorized: boolean;
  };
}

/** How to reach PostgreSQL. Used by src/config/connections.ts. */
export interface DatabaseConnectionConfig {
  /** May carry a password: log it only through describeConfig. */
  readonly databaseUrl: string;
  /** DATABASE_PASSWORD or the content of DATABASE_PASSWORD_FILE; absent: the URL's password, if any. */
  readonly databasePassword?: string;
  readonly databaseSsl: {
    readonly mode: DatabaseSslMode;
    readonly caFile?: string;
    readonly caPem?: string;
  };
}

/** Per-client token bucket of the producer; off when perSecond is 0. */
export interface RateLimitConfig {
  /** Trades (units) per second one client may submit. 0: off. */
  readonly perSecond: number;
  /** The bucket's size: what a client may submit at once. */
  readonly burst: number;
}

export interface ProducerConfig extends RedisConnectionConfig, DatabaseConnectionConfig {
  readonly port: number;
  readonly host: string;
  readonly logLevel: LogLevel;
  readonly namespace: string;
  readonly dedupWindowSeconds: number;
  /** 0 means unlimited. */
  readonly maxBacklog: number;
  readonly batchMaxTrades: number;
  readonly bodyLimitBytes: number;
  /**
   * Accepted bearer tokens (API_TOKENS and API_TOKENS_FILE together); empty:
   * authentication off. Never log them: describeConfig hides them.
   */
  readonly apiTokens: readonly string[];
  readonly rateLimit: RateLimitConfig;
  /** Requests worked on at once before new ones are shed with 503; 0: no cap. */
  readonly maxInflightRequests: number;
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

export interface WorkerConfig extends RedisConnectionConfig, DatabaseConnectionConfig {
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

export interface MigrateConfig extends DatabaseConnectionConfig {
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

const raw = (env: Env, name: VariableName): string => (env[name] ?? '').trim();

/** The content of the files a process's variables name, read once; problems appended. */
interface FileValues {
  redisPassword?: string;
  redisCaPem?: string;
  databasePassword?: string;
  databaseCaPem?: string;
  apiTokens: string[];
}

type FileSet = 'redis' | 'database' | 'tokens';

/**
 * Reads the files named by the variables of `sets` (and checks API_TOKENS),
 * from the raw environment, so that their problems are reported together
 * with those of the schema even when another variable is bad. Variables the
 * schema already refused are skipped.
 */
function readFiles(
  env: Env,
  sets: readonly FileSet[],
  failed: ReadonlySet<string>,
  problems: ConfigProblem[],
) {
  const out: FileValues = { apiTokens: [] };
  const path = (name: VariableName) => (failed.has(name) ? '' : raw(env, name));
  if (sets.includes('redis')) {
    const pw = readSecretFile('REDIS_PASSWORD_FILE', path('REDIS_PASSWORD_FILE'), problems);
    if (pw !== undefined) out.redisPassword = pw;
    const ca = readCaFile('REDIS_TLS_CA_FILE', path('REDIS_TLS_CA_FILE'), problems);
    if (ca !== undefined) out.redisCaPem = ca;
  }
  if (sets.includes('database')) {
    const pw = readSecretFile('DATABASE_PASSWORD_FILE', path('DATABASE_PASSWORD_FILE'), problems);
    if (pw !== undefined) out.databasePassword = pw;
    const ca = readCaFile('DATABASE_SSL_CA_FILE', path('DATABASE_SSL_CA_FILE'), problems);
    if (ca !== undefined) out.databaseCaPem = ca;
  }
  if (sets.includes('tokens')) {
    const listed = failed.has('API_TOKENS')
      ? []
      : raw(env, 'API_TOKENS')
          .split(',')
          .map((t) => t.trim())
          .filter((t) => t !== '');
    out.apiTokens = collectTokens(listed, path('API_TOKENS_FILE'), problems);
  }
  return out;
}

/**
 * Parses `schema` from `env` and reads the files of `sets`; throws ONE
 * ConfigError with every problem of both, otherwise builds the configuration.
 */
function load<S extends Schema, C>(
  schema: S,
  env: Env,
  context: string,
  sets: readonly FileSet[],
  build: (v: Values<S>, files: FileValues) => C,
): C {
  const problems: ConfigProblem[] = [];
  let values: Values<S> | undefined;
  try {
    values = parse(schema, env, context);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems.push(...err.problems);
  }
  const files = readFiles(env, sets, new Set(problems.map((p) => p.variable)), problems);
  if (values === undefined || problems.length > 0) throw new ConfigError(problems, context);
  return Object.freeze(build(values, files));
}

interface RedisValues {
  readonly REDIS_URL: string;
  readonly REDIS_PASSWORD: string;
  readonly REDIS_TLS_CA_FILE: string;
  readonly REDIS_TLS_REJECT_UNAUTHORIZED: boolean;
}

function redisConnection(v: RedisValues, files: FileValues): RedisConnectionConfig {
  const password = v.REDIS_PASSWORD !== '' ? v.REDIS_PASSWORD : files.redisPassword;
  return {
    redisUrl: v.REDIS_URL,
    ...(password === undefined ? {} : { redisPassword: password }),
    redisTls: Object.freeze({
      ...(v.REDIS_TLS_CA_FILE === '' ? {} : { caFile: v.REDIS_TLS_CA_FILE.trim() }),
      ...(files.redisCaPem === undefined ? {} : { caPem: files.redisCaPem }),
      rejectUnauthorized: v.REDIS_TLS_REJECT_UNAUTHORIZED,
    }),
  };
}

interface DatabaseValues {
  readonly DATABASE_URL: string;
  readonly DATABASE_PASSWORD: string;
  readonly DATABASE_SSL_MODE: DatabaseSslMode;
  readonly DATABASE_SSL_CA_FILE: string;
}

function databaseConnection(v: DatabaseValues, files: FileValues): DatabaseConnectionConfig {
  const password = v.DATABASE_PASSWORD !== '' ? v.DATABASE_PASSWORD : files.databasePassword;
  return {
    databaseUrl: v.DATABASE_URL,
    ...(password === undefined ? {} : { databasePassword: password }),
    databaseSsl: Object.freeze({
      mode: v.DATABASE_SSL_MODE,
      ...(v.DATABASE_SSL_CA_FILE === '' ? {} : { caFile: v.DATABASE_SSL_CA_FILE.trim() }),
      ...(files.databaseCaPem === undefined ? {} : { caPem: files.databaseCaPem }),
    }),
  };
}

/** @throws ConfigError listing every bad or missing variable and unusable file. */
export function loadProducerConfig(env: Env = process.env): ProducerConfig {
  return load(
    pick(PRODUCER_VARIABLES),
    env,
    'producer configuration',
    ['redis', 'database', 'tokens'],
    (v, files) => ({
      ...redisConnection(v, files),
      ...databaseConnection(v, files),
      port: v.PORT,
      host: v.HOST,
      logLevel: v.LOG_LEVEL,
      namespace: v.TRADEFLEET_NAMESPACE,
      dedupWindowSeconds: v.DEDUP_WINDOW_SECONDS,
      maxBacklog: v.MAX_BACKLOG,
      batchMaxTrades: v.BATCH_MAX_TRADES,
      bodyLimitBytes: v.BODY_LIMIT_BYTES,
      apiTokens: Object.freeze(files.apiTokens),
      rateLimit: Object.freeze({
        perSecond: v.RATE_LIMIT_PER_SECOND,
        burst: v.RATE_LIMIT_PER_SECOND === 0 ? 0 : v.RATE_LIMIT_BURST || v.RATE_LIMIT_PER_SECOND,
      }),
      maxInflightRequests: v.MAX_INFLIGHT_REQUESTS,
      pgPoolSize: v.PG_POOL_SIZE,
      shutdownTimeoutMs: v.SHUTDOWN_TIMEOUT_MS,
      tracingEnabled: v.TRACING_ENABLED,
      dashboard: Object.freeze({
        enabled: v.DASHBOARD_PASSWORD !== '',
        user: v.DASHBOARD_USER,
        password: v.DASHBOARD_PASSWORD,
        readOnly: v.DASHBOARD_READ_ONLY,
      }),
    }),
  );
}

/** @throws ConfigError listing every bad or missing variable and unusable file. */
export function loadWorkerConfig(env: Env = process.env): WorkerConfig {
  return load(pick(WORKER_VARIABLES), env, 'worker configuration', ['redis', 'database'], (v, files) => ({
    ...redisConnection(v, files),
    ...databaseConnection(v, files),
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
  }));
}

/** @throws ConfigError listing every bad or missing variable and unusable file. */
export function loadMigrateConfig(env: Env = process.env): MigrateConfig {
  return load(pick(MIGRATE_VARIABLES), env, 'migrate configuration', ['database'], (v, files) => ({
    ...databaseConnection(v, files),
    logLevel: v.LOG_LEVEL,
  }));
}

/** Keys whose values are secrets: never logged, whatever their type. */
const SECRET_KEY = /password|secret|token/i;

/**
 * A copy of a loaded configuration that is safe to log: URL passwords are
 * masked; passwords, tokens and secrets hidden (a list shows only its length);
 * PEM contents reduced to their size (the path is logged beside them).
 * Log this at boot, never the config object itself.
 */
export function describeConfig<C extends object>(config: C): Record<keyof C, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) {
    if (SECRET_KEY.test(k) && v !== undefined && v !== '') {
      out[k] = Array.isArray(v) ? `(${v.length} hidden)` : '(hidden)';
    } else if (typeof v === 'string' && /Url$/.test(k)) out[k] = maskUrl(v);
    else if (typeof v === 'string' && /Pem$/.test(k)) out[k] = `(PEM, ${v.length} characters)`;
    else if (v !== null && typeof v === 'object' && !Array.isArray(v)) out[k] = describeConfig(v);
    else out[k] = v;
  }
  return out as Record<keyof C, unknown>;
}
