/**
 * Every environment variable tradefleet reads, in one place. The README
 * configuration table is generated from this file (`npx tsx scripts/config-table.ts --write`)
 * and a unit test fails when the two differ.
 */
import { boolean, durationMs, int, list, oneOf, string, url, type CrossCheck, type Values } from './schema';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const PERMANENT_FAILURE_POLICIES = ['dead-letter', 'halt'] as const;
export type PermanentFailurePolicy = (typeof PERMANENT_FAILURE_POLICIES)[number];

export const DATABASE_SSL_MODES = ['disable', 'require', 'verify-full'] as const;
export type DatabaseSslMode = (typeof DATABASE_SSL_MODES)[number];

/** A path to a file the process reads once at start-up (a mounted Secret, a CA bundle). */
const filePath = (description: string) =>
  string({
    default: '',
    pattern: /^(?:|[^\0\n]+)$/,
    patternText: 'a file path',
    description,
  });

/** The processes that read configuration; each reads only its own variables. */
export type ProcessName = 'producer' | 'worker' | 'migrate';

export const configSchema = {
  REDIS_URL: url({
    protocols: ['redis', 'rediss'],
    default: 'redis://127.0.0.1:6379',
    description:
      'Redis holding the queue: the partition lists, the ready set and the leases, and the scaling signals.',
  }),
  DATABASE_URL: url({
    protocols: ['postgres', 'postgresql'],
    default: 'postgres://postgres@127.0.0.1:5432/tradefleet',
    description: 'PostgreSQL holding positions, applied trades and dead letters.',
  }),
  REDIS_PASSWORD: string({
    default: '',
    secret: true,
    description:
      'Password Redis AUTH uses; overrides a password in REDIS_URL. The user name, if any, stays in the URL (redis://user@host:6379).',
  }),
  REDIS_PASSWORD_FILE: filePath(
    'File holding the Redis password (a mounted Secret); its content less a trailing newline. Set REDIS_PASSWORD or this, not both.',
  ),
  REDIS_TLS_CA_FILE: filePath(
    "PEM file of the certificate authorities to trust for Redis TLS (rediss:// only), instead of Node's built-in list.",
  ),
  REDIS_TLS_REJECT_UNAUTHORIZED: boolean({
    default: true,
    description:
      'Refuse a Redis server whose TLS certificate does not verify (rediss:// only). false turns verification off: for a throwaway test setup, never in production.',
  }),
  DATABASE_PASSWORD: string({
    default: '',
    secret: true,
    description: 'PostgreSQL password; overrides a password in DATABASE_URL.',
  }),
  DATABASE_PASSWORD_FILE: filePath(
    'File holding the PostgreSQL password (a mounted Secret); its content less a trailing newline. Set DATABASE_PASSWORD or this, not both.',
  ),
  DATABASE_SSL_MODE: oneOf(DATABASE_SSL_MODES, {
    default: 'disable',
    description:
      'TLS to PostgreSQL: disable; require (encrypted, the certificate is not checked); verify-full (encrypted, the certificate must chain to a trusted CA and name the host). Use this rather than sslmode in DATABASE_URL.',
  }),
  DATABASE_SSL_CA_FILE: filePath(
    "PEM file of the certificate authorities to trust for PostgreSQL (with DATABASE_SSL_MODE=verify-full), instead of Node's built-in list.",
  ),
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
    default: 64,
    description:
      'Partitions one worker leases (drains) at once: also the C of the scaling formula, so a larger C means fewer workers for the same partitions. A worker claims up to half of them (at most 128) per Redis round trip, and their batches share transactions, so a larger C also means larger groups and more work in flight: one worker with 128 drained one trade per partition about 35% faster end to end than with 64, and 1,000 busy partitions about 15% faster (npm run bench). With few partitions and deep queues, C decides the number of workers: 128 would run half as many.',
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
      'Trades one lease may apply before its partition goes to the back of the ready set (round-robin across partitions); at least WORKER_BATCH_SIZE.',
  }),
  LOCK_DURATION_MS: durationMs({
    min: 1000,
    max: 600_000,
    default: 5000,
    description:
      "Duration of a partition lease. A live worker extends its leases every LOCK_DURATION_MS/3; a dead or frozen worker's partitions are taken over by another worker (with a new fencing epoch) once their leases expire, after at most this.",
  }),
  STALLED_INTERVAL_MS: durationMs({
    min: 100,
    max: 600_000,
    default: 2500,
    description:
      'The longest an idle worker waits before it looks again for expired leases and ended retry backoffs (new trades wake it at once); at most LOCK_DURATION_MS.',
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
  API_TOKENS: list({
    default: [],
    secret: true,
    description:
      'Comma-separated bearer tokens the producer API accepts (Authorization: Bearer <token>), each 16 to 512 characters from A-Z a-z 0-9 - . _ ~ + / (= padding at the end). With API_TOKENS_FILE too, either list may be used. No token configured: every route is open (a warning is logged). The dashboard accepts the same tokens.',
  }),
  API_TOKENS_FILE: filePath(
    'File of bearer tokens, one a line; blank lines and lines starting with # are ignored (a mounted Secret: the Kubernetes way). Read at start-up: restart to rotate.',
  ),
  RATE_LIMIT_PER_SECOND: int({
    min: 0,
    max: 10_000_000,
    default: 0,
    description:
      'Trades per second one client may submit to one producer replica (a single trade counts 1, a batch its number of trades, any other /v1 request 1); 0 turns rate limiting off. A client is its bearer token, or its IP address when auth is off. Excess requests answer 429 rate_limited with Retry-After.',
  }),
  MAX_INFLIGHT_REQUESTS: int({
    min: 0,
    max: 1_000_000,
    default: 256,
    description:
      "Requests one producer replica works on at once; past it, new /v1 requests answer 503 overloaded with Retry-After at once, before their body is read (probes and /metrics always answer). Bounds the producer's memory: worst case about this many times BODY_LIMIT_BYTES. 0 turns the cap off.",
  }),
  RATE_LIMIT_BURST: int({
    min: 0,
    max: 100_000_000,
    default: 0,
    description:
      "Trades a client may submit at once above its rate (the bucket's size); 0 means one second's worth, RATE_LIMIT_PER_SECOND.",
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
      'Dashboard without operator actions: resume, retry-head, halt, skip-head and replay answer 403.',
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

/** How every process that connects reaches Redis and PostgreSQL. */
const REDIS_CONNECTION_VARIABLES = [
  'REDIS_URL',
  'REDIS_PASSWORD',
  'REDIS_PASSWORD_FILE',
  'REDIS_TLS_CA_FILE',
  'REDIS_TLS_REJECT_UNAUTHORIZED',
] as const satisfies readonly VariableName[];

const DATABASE_CONNECTION_VARIABLES = [
  'DATABASE_URL',
  'DATABASE_PASSWORD',
  'DATABASE_PASSWORD_FILE',
  'DATABASE_SSL_MODE',
  'DATABASE_SSL_CA_FILE',
] as const satisfies readonly VariableName[];

export const PRODUCER_VARIABLES = [
  ...REDIS_CONNECTION_VARIABLES,
  ...DATABASE_CONNECTION_VARIABLES,
  'PORT',
  'HOST',
  'LOG_LEVEL',
  'TRADEFLEET_NAMESPACE',
  'DEDUP_WINDOW_SECONDS',
  'MAX_BACKLOG',
  'BATCH_MAX_TRADES',
  'BODY_LIMIT_BYTES',
  'API_TOKENS',
  'API_TOKENS_FILE',
  'RATE_LIMIT_PER_SECOND',
  'RATE_LIMIT_BURST',
  'MAX_INFLIGHT_REQUESTS',
  'PG_POOL_SIZE',
  'SHUTDOWN_TIMEOUT_MS',
  'TRACING_ENABLED',
  'DASHBOARD_USER',
  'DASHBOARD_PASSWORD',
  'DASHBOARD_READ_ONLY',
] as const satisfies readonly VariableName[];

export const WORKER_VARIABLES = [
  ...REDIS_CONNECTION_VARIABLES,
  ...DATABASE_CONNECTION_VARIABLES,
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

export const MIGRATE_VARIABLES = [
  ...DATABASE_CONNECTION_VARIABLES,
  'LOG_LEVEL',
] as const satisfies readonly VariableName[];

export const VARIABLES_BY_PROCESS: Readonly<Record<ProcessName, readonly VariableName[]>> = {
  producer: PRODUCER_VARIABLES,
  worker: WORKER_VARIABLES,
  migrate: MIGRATE_VARIABLES,
};

/** PostgreSQL connection-string parameters that would override DATABASE_SSL_MODE (pg reads them itself). */
const URL_SSL_PARAMETERS = ['ssl', 'sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'sslnegotiation'];

function urlSslParameters(raw: string): string[] {
  try {
    const params = new URL(raw).searchParams;
    return URL_SSL_PARAMETERS.filter((p) => params.has(p));
  } catch {
    return [];
  }
}

const isTlsUrl = (raw: string): boolean => raw.trim().toLowerCase().startsWith('rediss://');

/** Rules across variables; reported together with the per-variable problems. */
export const crossChecks: readonly CrossCheck<ConfigValues>[] = [
  {
    variables: ['REDIS_PASSWORD', 'REDIS_PASSWORD_FILE'],
    check: (v) =>
      v.REDIS_PASSWORD !== '' && v.REDIS_PASSWORD_FILE !== ''
        ? 'REDIS_PASSWORD and REDIS_PASSWORD_FILE are both set: it is not clear which password is meant. ' +
          'Fix: unset one of them (in Kubernetes, keep the file from the mounted Secret).'
        : undefined,
  },
  {
    variables: ['DATABASE_PASSWORD', 'DATABASE_PASSWORD_FILE'],
    check: (v) =>
      v.DATABASE_PASSWORD !== '' && v.DATABASE_PASSWORD_FILE !== ''
        ? 'DATABASE_PASSWORD and DATABASE_PASSWORD_FILE are both set: it is not clear which password is meant. ' +
          'Fix: unset one of them.'
        : undefined,
  },
  {
    variables: ['REDIS_TLS_CA_FILE', 'REDIS_URL'],
    check: (v) =>
      v.REDIS_TLS_CA_FILE !== '' && !isTlsUrl(v.REDIS_URL)
        ? `REDIS_TLS_CA_FILE is set but REDIS_URL uses redis:// (no TLS), so the CA would never be used. ` +
          'Fix: use a rediss:// URL (the TLS port of your Redis), or unset REDIS_TLS_CA_FILE.'
        : undefined,
  },
  {
    variables: ['REDIS_TLS_REJECT_UNAUTHORIZED', 'REDIS_URL'],
    check: (v) =>
      !v.REDIS_TLS_REJECT_UNAUTHORIZED && !isTlsUrl(v.REDIS_URL)
        ? 'REDIS_TLS_REJECT_UNAUTHORIZED=false is set but REDIS_URL uses redis:// (no TLS). ' +
          'Fix: use a rediss:// URL, or unset REDIS_TLS_REJECT_UNAUTHORIZED.'
        : undefined,
  },
  {
    variables: ['DATABASE_SSL_CA_FILE', 'DATABASE_SSL_MODE'],
    check: (v) =>
      v.DATABASE_SSL_CA_FILE !== '' && v.DATABASE_SSL_MODE !== 'verify-full'
        ? `DATABASE_SSL_CA_FILE is set but DATABASE_SSL_MODE=${v.DATABASE_SSL_MODE} does not verify certificates, so the CA would never be used. ` +
          'Fix: set DATABASE_SSL_MODE=verify-full, or unset DATABASE_SSL_CA_FILE.'
        : undefined,
  },
  {
    variables: ['DATABASE_URL'],
    check: (v) => {
      const found = urlSslParameters(v.DATABASE_URL);
      return found.length === 0
        ? undefined
        : `DATABASE_URL carries ${found.join(', ')}, which would silently override DATABASE_SSL_MODE (and pg reads sslmode=require as verify-full). ` +
            'Fix: remove them from the URL and set DATABASE_SSL_MODE (disable, require or verify-full) and DATABASE_SSL_CA_FILE instead.';
    },
  },
  {
    variables: ['RATE_LIMIT_BURST', 'RATE_LIMIT_PER_SECOND'],
    check: (v) =>
      v.RATE_LIMIT_BURST > 0 && v.RATE_LIMIT_PER_SECOND === 0
        ? `RATE_LIMIT_BURST=${v.RATE_LIMIT_BURST} is set but RATE_LIMIT_PER_SECOND=0 turns rate limiting off. ` +
          'Fix: set RATE_LIMIT_PER_SECOND to the trades per second one client may submit, or unset RATE_LIMIT_BURST.'
        : undefined,
  },
  {
    variables: ['STALLED_INTERVAL_MS', 'LOCK_DURATION_MS'],
    check: (v) =>
      v.STALLED_INTERVAL_MS <= v.LOCK_DURATION_MS
        ? undefined
        : `STALLED_INTERVAL_MS=${v.STALLED_INTERVAL_MS} is greater than LOCK_DURATION_MS=${v.LOCK_DURATION_MS}: ` +
          `an idle worker could wait longer than a lease lasts before it looks for expired leases. ` +
          `Fix: set STALLED_INTERVAL_MS to at most ${v.LOCK_DURATION_MS}, or raise LOCK_DURATION_MS.`,
  },
  {
    variables: ['WORKER_BUDGET', 'WORKER_BATCH_SIZE'],
    check: (v) =>
      v.WORKER_BUDGET >= v.WORKER_BATCH_SIZE
        ? undefined
        : `WORKER_BUDGET=${v.WORKER_BUDGET} is smaller than WORKER_BATCH_SIZE=${v.WORKER_BATCH_SIZE}: ` +
          `a lease could not apply even one full batch before its partition yields. ` +
          `Fix: set WORKER_BUDGET to at least ${v.WORKER_BATCH_SIZE}, or lower WORKER_BATCH_SIZE.`,
  },
];
