/**
 * The one deployment configuration: every number of the manifests, with
 * defaults and per-environment overrides. `resolveConfig('dev' | 'prod')`
 * merges them and validates the result, reporting every problem together,
 * each with the field, the value and the fix.
 *
 * The non-secret process environment (the ConfigMap) is derived from here and
 * checked with src/config's own schema, so the manifests cannot carry a value
 * the processes would reject; WORKER_CONCURRENCY and the C of the scaling
 * formula are the same field (`scaling.concurrency`).
 */
import type { HpaBehavior } from '../src/scaling/hpa';

export const ENVIRONMENTS = ['dev', 'prod'] as const;
export type EnvironmentName = (typeof ENVIRONMENTS)[number];

export interface Resources {
  readonly requests: { readonly cpu: string; readonly memory: string };
  readonly limits: { readonly cpu: string; readonly memory: string };
}

export interface TopologySpread {
  /** @default 1 */
  readonly maxSkew: number;
  /** Spread over these node labels, in order (zone, then host). */
  readonly topologyKeys: readonly string[];
  /** @default 'ScheduleAnyway' (a single-zone cluster must still schedule) */
  readonly whenUnsatisfiable: 'ScheduleAnyway' | 'DoNotSchedule';
}

/** Where a data store is: deployed in the cluster by these manifests (dev), or external (prod). */
export type DataStore =
  | {
      readonly mode: 'in-cluster';
      readonly image: string;
      readonly storage: string;
      readonly resources: Resources;
    }
  | {
      readonly mode: 'external';
      /** CIDRs the workloads may open connections to (NetworkPolicy egress). */
      readonly egressCidrs: readonly string[];
      readonly port: number;
    };

export interface DeployConfig {
  readonly environment: EnvironmentName;
  /** Kubernetes namespace of every object. */
  readonly namespace: string;
  /** Prefix of object names. @default 'tradefleet' */
  readonly name: string;
  readonly image: {
    readonly repository: string;
    readonly tag: string;
    readonly pullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  };

  /** Non-secret process environment (src/config variables), shared by every process. */
  readonly app: {
    /** TRADEFLEET_NAMESPACE: the Redis key namespace the ScaledObject's key names are built from. */
    readonly queueNamespace: string;
    readonly logLevel: string;
    readonly permanentFailurePolicy: 'dead-letter' | 'halt';
    readonly workerBatchSize: number;
    readonly workerBudget: number;
    readonly lockDurationMs: number;
    readonly stalledIntervalMs: number;
    readonly dedupWindowSeconds: number;
    readonly maxBacklog: number;
    readonly batchMaxTrades: number;
    readonly bodyLimitBytes: number;
    readonly pgPoolSize: number;
    /** SHUTDOWN_TIMEOUT_MS: the drain deadline after SIGTERM. */
    readonly shutdownTimeoutMs: number;
    /** terminationGracePeriodSeconds = ceil(shutdownTimeoutMs / 1000) + this. @default 10 */
    readonly terminationGraceMarginSeconds: number;
    /** TRACING_ENABLED: spans exported by the OpenTelemetry SDK the image is started with. @default false */
    readonly tracingEnabled: boolean;
  };

  readonly producer: {
    readonly port: number;
    readonly minReplicas: number;
    readonly maxReplicas: number;
    /** HPA target: average CPU utilization of the requests, percent. */
    readonly cpuUtilization: number;
    readonly resources: Resources;
    /** PodDisruptionBudget maxUnavailable. */
    readonly maxUnavailable: number;
    /** Namespaces allowed to reach the API (NetworkPolicy ingress); empty: any source. */
    readonly ingressFromNamespaces: readonly string[];
    /**
     * Secret with key `tokens`: the API's bearer tokens, one a line, mounted as
     * a file (API_TOKENS_FILE). The producer does not start until it exists; ''
     * turns authentication off (not for production). @default 'tradefleet-api-tokens'
     */
    readonly apiTokensSecretName: string;
    /**
     * Per-client rate limit of each producer replica (RATE_LIMIT_PER_SECOND,
     * RATE_LIMIT_BURST), in trades per second; 0 turns it off. @default off
     */
    readonly rateLimit: { readonly perSecond: number; readonly burst: number };
    /**
     * MAX_INFLIGHT_REQUESTS: requests a replica works on at once before it sheds
     * load with 503; keep it x BODY_LIMIT_BYTES below the memory limit. @default 256
     */
    readonly maxInflightRequests: number;
    /** The dashboard at /dashboard on the producer. */
    readonly dashboard: {
      /** DASHBOARD_USER. @default 'admin' */
      readonly user: string;
      /** DASHBOARD_READ_ONLY. @default false */
      readonly readOnly: boolean;
      /**
       * Secret with key `password` (DASHBOARD_PASSWORD). Optional: without the
       * Secret the producer serves no dashboard. @default 'tradefleet-dashboard'
       */
      readonly secretName: string;
    };
  };

  readonly worker: {
    readonly resources: Resources;
    readonly maxUnavailable: number;
  };

  readonly migrate: {
    readonly resources: Resources;
    readonly backoffLimit: number;
    readonly activeDeadlineSeconds: number;
  };

  /** KEDA ScaledObject numbers (DESIGN.md section 4). */
  readonly scaling: {
    /** C, and WORKER_CONCURRENCY of the workers. */
    readonly concurrency: number;
    /** T: the backlog one worker is expected to carry. */
    readonly backlogPerWorker: number;
    readonly minReplicas: number;
    readonly maxReplicas: number;
    readonly pollingIntervalSeconds: number;
    readonly cooldownPeriodSeconds: number;
    /** After failureThreshold failed reads in a row, run `replicas` workers. */
    readonly fallback: { readonly failureThreshold: number; readonly replicas: number };
    readonly behavior: HpaBehavior;
    /** Namespace KEDA's operator runs in (it connects to Redis). @default 'keda' */
    readonly kedaNamespace: string;
  };

  readonly redis: DataStore & {
    /**
     * Secret with keys `url` (REDIS_URL, rediss:// for TLS; its password may be
     * left out), `address` (host:port, for KEDA) and `password` (REDIS_PASSWORD
     * and KEDA's; optional for the processes).
     */
    readonly secretName: string;
    /** KEDA connects with TLS (use with rediss:// URLs). */
    readonly tls: boolean;
    /**
     * ConfigMap with key `ca.crt`: the CA(s) that signed Redis's certificate, for
     * a private CA (REDIS_TLS_CA_FILE, and KEDA's `ca`). '' trusts the usual public
     * CAs. Needs `tls`. @default ''
     */
    readonly caConfigMap: string;
  };
  readonly postgres: DataStore & {
    /**
     * Secret with keys `url` (DATABASE_URL, without ssl parameters; its password
     * may be left out) and `password` (DATABASE_PASSWORD; optional).
     */
    readonly secretName: string;
    /** DATABASE_SSL_MODE. @default 'verify-full' (prod), 'disable' (dev) */
    readonly sslMode: 'disable' | 'require' | 'verify-full';
    /** ConfigMap with key `ca.crt` for DATABASE_SSL_CA_FILE (a private CA); '' trusts the public CAs. @default '' */
    readonly caConfigMap: string;
  };

  readonly topologySpread: TopologySpread;

  /** Prometheus operator and Grafana objects (cdk8s/constructs/monitoring.ts). */
  readonly monitoring: {
    /** METRICS_PORT of the workers. @default 9464 */
    readonly metricsPort: number;
    /** Namespace of Prometheus: its pods may reach /metrics (NetworkPolicy). @default 'monitoring' */
    readonly prometheusNamespace: string;
    /** PodMonitor scrape interval. @default '15s' */
    readonly scrapeInterval: string;
    /** Labels the Prometheus operator selects PrometheusRules and PodMonitors by (e.g. { release: 'kube-prometheus-stack' }). @default {} */
    readonly ruleLabels: Readonly<Record<string, string>>;
    /** Labels Grafana's dashboard sidecar looks for. @default { grafana_dashboard: '1' } */
    readonly grafanaDashboardLabels: Readonly<Record<string, string>>;
    /** The SLO of the oldest waiting trade's age, in seconds (alert and dashboard threshold). @default 300 */
    readonly oldestWaitingSloSeconds: number;
  };
}

type DeepPartial<T> = T extends readonly (infer _U)[]
  ? T
  : T extends object
    ? { readonly [K in keyof T]?: DeepPartial<T[K]> }
    : T;

const resources = (cpu: string, memory: string, cpuLimit: string, memoryLimit: string): Resources => ({
  requests: { cpu, memory },
  limits: { cpu: cpuLimit, memory: memoryLimit },
});

/** Defaults: production-minded; environments override what differs. */
export const DEFAULTS: Omit<DeployConfig, 'environment' | 'redis' | 'postgres'> = {
  namespace: 'tradefleet',
  name: 'tradefleet',
  image: { repository: 'registry.example.com/tradefleet', tag: '0.1.0', pullPolicy: 'IfNotPresent' },
  app: {
    queueNamespace: 'tradefleet',
    logLevel: 'info',
    permanentFailurePolicy: 'dead-letter',
    workerBatchSize: 64,
    workerBudget: 512,
    lockDurationMs: 5000,
    stalledIntervalMs: 2500,
    dedupWindowSeconds: 86400,
    maxBacklog: 1_000_000,
    batchMaxTrades: 1000,
    bodyLimitBytes: 1_048_576,
    pgPoolSize: 10,
    shutdownTimeoutMs: 20_000,
    terminationGraceMarginSeconds: 10,
    tracingEnabled: false,
  },
  producer: {
    port: 8080,
    minReplicas: 2,
    maxReplicas: 10,
    cpuUtilization: 70,
    resources: resources('250m', '256Mi', '1', '512Mi'),
    maxUnavailable: 1,
    ingressFromNamespaces: [],
    apiTokensSecretName: 'tradefleet-api-tokens',
    rateLimit: { perSecond: 0, burst: 0 },
    maxInflightRequests: 256,
    dashboard: { user: 'admin', readOnly: false, secretName: 'tradefleet-dashboard' },
  },
  worker: { resources: resources('250m', '256Mi', '1', '512Mi'), maxUnavailable: 1 },
  migrate: {
    resources: resources('100m', '128Mi', '500m', '256Mi'),
    backoffLimit: 6,
    activeDeadlineSeconds: 900,
  },
  scaling: {
    concurrency: 64,
    backlogPerWorker: 2000,
    minReplicas: 0,
    maxReplicas: 20,
    pollingIntervalSeconds: 5,
    cooldownPeriodSeconds: 120,
    fallback: { failureThreshold: 3, replicas: 2 },
    behavior: {
      // Fast scale-up: no stabilization; +4 pods or +100% per 15 s, whichever is more.
      scaleUp: {
        stabilizationWindowSeconds: 0,
        selectPolicy: 'Max',
        policies: [
          { type: 'Pods', value: 4, periodSeconds: 15 },
          { type: 'Percent', value: 100, periodSeconds: 15 },
        ],
      },
      // Stabilized scale-down: the highest recommendation of the last 3 minutes,
      // then at most 25% of the pods (at least 1) per minute.
      scaleDown: {
        stabilizationWindowSeconds: 180,
        selectPolicy: 'Max',
        policies: [
          { type: 'Percent', value: 25, periodSeconds: 60 },
          { type: 'Pods', value: 1, periodSeconds: 60 },
        ],
      },
    },
    kedaNamespace: 'keda',
  },
  topologySpread: {
    maxSkew: 1,
    topologyKeys: ['topology.kubernetes.io/zone', 'kubernetes.io/hostname'],
    whenUnsatisfiable: 'ScheduleAnyway',
  },
  monitoring: {
    metricsPort: 9464,
    prometheusNamespace: 'monitoring',
    scrapeInterval: '15s',
    ruleLabels: {},
    grafanaDashboardLabels: { grafana_dashboard: '1' },
    oldestWaitingSloSeconds: 300,
  },
};

/** Per-environment overrides, merged over DEFAULTS. */
export const OVERRIDES: Readonly<
  Record<EnvironmentName, DeepPartial<DeployConfig> & Pick<DeployConfig, 'redis' | 'postgres'>>
> = {
  dev: {
    namespace: 'tradefleet-dev',
    image: { repository: 'tradefleet', tag: 'dev', pullPolicy: 'IfNotPresent' },
    app: { logLevel: 'debug' },
    producer: { minReplicas: 1, maxReplicas: 2, resources: resources('100m', '128Mi', '500m', '256Mi') },
    worker: { resources: resources('100m', '128Mi', '500m', '256Mi') },
    scaling: {
      maxReplicas: 4,
      cooldownPeriodSeconds: 30,
      fallback: { failureThreshold: 3, replicas: 1 },
    },
    redis: {
      mode: 'in-cluster',
      image: 'redis:7.4.2',
      storage: '1Gi',
      resources: resources('100m', '128Mi', '500m', '512Mi'),
      secretName: 'tradefleet-redis',
      tls: false,
      caConfigMap: '',
    },
    postgres: {
      mode: 'in-cluster',
      image: 'postgres:16.6',
      storage: '2Gi',
      resources: resources('100m', '256Mi', '1', '1Gi'),
      secretName: 'tradefleet-postgres',
      sslMode: 'disable',
      caConfigMap: '',
    },
  },
  prod: {
    scaling: { maxReplicas: 20 },
    redis: {
      mode: 'external',
      // Replace with the subnet of your Redis (a managed Redis endpoint, for example).
      egressCidrs: ['10.0.0.0/8'],
      port: 6379,
      secretName: 'tradefleet-redis',
      tls: true,
      caConfigMap: '',
    },
    postgres: {
      mode: 'external',
      egressCidrs: ['10.0.0.0/8'],
      port: 5432,
      secretName: 'tradefleet-postgres',
      sslMode: 'verify-full',
      caConfigMap: '',
    },
  },
};

function merge<T>(base: T, over: unknown): T {
  if (over === undefined) return base;
  if (Array.isArray(over) || typeof over !== 'object' || over === null) return over as T;
  if (typeof base !== 'object' || base === null || Array.isArray(base)) return over as T;
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(over)) out[k] = merge((base as Record<string, unknown>)[k], v);
  return out as T;
}

export class DeployConfigError extends Error {
  override readonly name = 'DeployConfigError';
  constructor(
    readonly environment: string,
    readonly problems: readonly string[],
  ) {
    super(
      `Invalid deployment configuration "${environment}": ${problems.length} problem(s)\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
  }
}

/** The non-secret environment every process gets, from the config (ConfigMap data). */
export function processEnvironment(c: DeployConfig): Record<string, string> {
  return {
    BATCH_MAX_TRADES: String(c.app.batchMaxTrades),
    BODY_LIMIT_BYTES: String(c.app.bodyLimitBytes),
    DEDUP_WINDOW_SECONDS: String(c.app.dedupWindowSeconds),
    HOST: '0.0.0.0',
    LOCK_DURATION_MS: String(c.app.lockDurationMs),
    LOG_LEVEL: c.app.logLevel,
    MAX_BACKLOG: String(c.app.maxBacklog),
    PERMANENT_FAILURE_POLICY: c.app.permanentFailurePolicy,
    PG_POOL_SIZE: String(c.app.pgPoolSize),
    PORT: String(c.producer.port),
    SHUTDOWN_TIMEOUT_MS: String(c.app.shutdownTimeoutMs),
    STALLED_INTERVAL_MS: String(c.app.stalledIntervalMs),
    TRADEFLEET_NAMESPACE: c.app.queueNamespace,
    WORKER_BATCH_SIZE: String(c.app.workerBatchSize),
    WORKER_BUDGET: String(c.app.workerBudget),
    WORKER_CONCURRENCY: String(c.scaling.concurrency),
    METRICS_PORT: String(c.monitoring.metricsPort),
    TRACING_ENABLED: String(c.app.tracingEnabled),
    DASHBOARD_USER: c.producer.dashboard.user,
    DASHBOARD_READ_ONLY: String(c.producer.dashboard.readOnly),
    DATABASE_SSL_MODE: c.postgres.sslMode,
    RATE_LIMIT_PER_SECOND: String(c.producer.rateLimit.perSecond),
    RATE_LIMIT_BURST: String(c.producer.rateLimit.burst),
    MAX_INFLIGHT_REQUESTS: String(c.producer.maxInflightRequests),
  };
}

export function terminationGracePeriodSeconds(c: DeployConfig): number {
  return Math.ceil(c.app.shutdownTimeoutMs / 1000) + c.app.terminationGraceMarginSeconds;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

function validate(c: DeployConfig): string[] {
  const problems: string[] = [];
  const int = (field: string, v: number, min: number, max = Number.MAX_SAFE_INTEGER) => {
    if (!Number.isInteger(v) || v < min || v > max)
      problems.push(
        `${field}=${v} must be an integer from ${min} to ${max}. Fix: set ${field} in cdk8s/config.ts within that range.`,
      );
  };
  for (const [field, v] of [
    ['namespace', c.namespace],
    ['name', c.name],
  ] as const) {
    if (!DNS_LABEL.test(v) || v.length > 40)
      problems.push(
        `${field}=${JSON.stringify(v)} must be a DNS label of at most 40 characters (a-z, 0-9, -).`,
      );
  }
  if (!/^[a-z0-9][a-z0-9-]{0,39}$/.test(c.app.queueNamespace)) {
    problems.push(
      `app.queueNamespace=${JSON.stringify(c.app.queueNamespace)} must match TRADEFLEET_NAMESPACE's pattern (a-z, 0-9, -, at most 40).`,
    );
  }
  const s = c.scaling;
  int('scaling.concurrency', s.concurrency, 1, 1000);
  int('scaling.backlogPerWorker', s.backlogPerWorker, 1, 1_000_000_000);
  int('scaling.minReplicas', s.minReplicas, 0, 1000);
  int('scaling.maxReplicas', s.maxReplicas, 1, 1000);
  int('scaling.pollingIntervalSeconds', s.pollingIntervalSeconds, 1, 3600);
  int('scaling.cooldownPeriodSeconds', s.cooldownPeriodSeconds, 0, 86400);
  int('scaling.fallback.failureThreshold', s.fallback.failureThreshold, 0, 1000);
  int('scaling.fallback.replicas', s.fallback.replicas, 0, s.maxReplicas);
  if (s.minReplicas > s.maxReplicas) {
    problems.push(
      `scaling.minReplicas=${s.minReplicas} is greater than scaling.maxReplicas=${s.maxReplicas}. Fix: lower minReplicas or raise maxReplicas.`,
    );
  }
  for (const dir of ['scaleUp', 'scaleDown'] as const) {
    const r = s.behavior[dir];
    int(`scaling.behavior.${dir}.stabilizationWindowSeconds`, r.stabilizationWindowSeconds, 0, 3600);
    r.policies.forEach((p, i) => {
      int(`scaling.behavior.${dir}.policies[${i}].value`, p.value, 1);
      int(`scaling.behavior.${dir}.policies[${i}].periodSeconds`, p.periodSeconds, 1, 1800);
    });
    if (r.selectPolicy !== 'Disabled' && r.policies.length === 0) {
      problems.push(
        `scaling.behavior.${dir}.policies is empty. Fix: add a policy or set selectPolicy to Disabled.`,
      );
    }
  }
  int('producer.port', c.producer.port, 1, 65535);
  int('producer.minReplicas', c.producer.minReplicas, 1, 1000);
  int('producer.maxReplicas', c.producer.maxReplicas, c.producer.minReplicas, 1000);
  int('producer.cpuUtilization', c.producer.cpuUtilization, 1, 100);
  int('app.terminationGraceMarginSeconds', c.app.terminationGraceMarginSeconds, 5, 600);
  int('monitoring.metricsPort', c.monitoring.metricsPort, 1, 65535);
  if (c.monitoring.metricsPort === c.producer.port) {
    problems.push(
      `monitoring.metricsPort=${c.monitoring.metricsPort} is the producer's port. Fix: give the workers' metrics another port.`,
    );
  }
  int('monitoring.oldestWaitingSloSeconds', c.monitoring.oldestWaitingSloSeconds, 1, 86_400);
  if (!/^\d+(ms|s|m|h)$/.test(c.monitoring.scrapeInterval)) {
    problems.push(
      `monitoring.scrapeInterval=${JSON.stringify(c.monitoring.scrapeInterval)} must be a Prometheus duration like 15s or 1m.`,
    );
  }
  if (!DNS_LABEL.test(c.monitoring.prometheusNamespace)) {
    problems.push(
      `monitoring.prometheusNamespace=${JSON.stringify(c.monitoring.prometheusNamespace)} must be a namespace name (a DNS label).`,
    );
  }
  for (const [store, d] of [
    ['redis', c.redis],
    ['postgres', c.postgres],
  ] as const) {
    if (d.mode === 'external') {
      if (d.egressCidrs.length === 0)
        problems.push(
          `${store}.egressCidrs is empty: the workers could reach no ${store}. Fix: list the CIDR(s) of your ${store}.`,
        );
      for (const cidr of d.egressCidrs) {
        const m = CIDR.exec(cidr);
        if (!m || m.slice(1, 5).some((o) => Number(o) > 255) || Number(m[5]) > 32) {
          problems.push(
            `${store}.egressCidrs contains ${JSON.stringify(cidr)}, which is not an IPv4 CIDR like 10.0.0.0/8.`,
          );
        }
      }
      int(`${store}.port`, d.port, 1, 65535);
    }
  }
  if (c.redis.caConfigMap !== '' && !c.redis.tls) {
    problems.push(
      `redis.caConfigMap=${JSON.stringify(c.redis.caConfigMap)} is set but redis.tls is false: the CA would never be used. Fix: set redis.tls to true (and a rediss:// url in the Secret), or caConfigMap to ''.`,
    );
  }
  if (c.postgres.caConfigMap !== '' && c.postgres.sslMode !== 'verify-full') {
    problems.push(
      `postgres.caConfigMap=${JSON.stringify(c.postgres.caConfigMap)} is set but postgres.sslMode=${c.postgres.sslMode} does not verify certificates. Fix: set postgres.sslMode to 'verify-full', or caConfigMap to ''.`,
    );
  }
  for (const [field, name] of [
    ['producer.apiTokensSecretName', c.producer.apiTokensSecretName],
    ['redis.caConfigMap', c.redis.caConfigMap],
    ['postgres.caConfigMap', c.postgres.caConfigMap],
  ] as const) {
    if (name !== '' && (!DNS_LABEL.test(name) || name.length > 63))
      problems.push(`${field}=${JSON.stringify(name)} must be '' or a Kubernetes object name (a DNS label).`);
  }
  // The processes' own schema has the last word on their environment.
  try {
    // Loaded lazily: src/config is plain TypeScript without I/O.
    const { loadProducerConfig, loadWorkerConfig } =
      require('../src/config') as typeof import('../src/config');
    const env = {
      ...processEnvironment(c),
      REDIS_URL: 'redis://placeholder:6379',
      DATABASE_URL: 'postgres://placeholder/tradefleet',
    };
    loadProducerConfig(env);
    loadWorkerConfig(env);
  } catch (err) {
    problems.push(`the process environment derived from this config is invalid: ${(err as Error).message}`);
  }
  return problems;
}

/** The merged, validated configuration of one environment. */
export function resolveConfig(environment: EnvironmentName, extra?: DeepPartial<DeployConfig>): DeployConfig {
  if (!(ENVIRONMENTS as readonly string[]).includes(environment)) {
    throw new DeployConfigError(environment, [`unknown environment; known: ${ENVIRONMENTS.join(', ')}`]);
  }
  const merged = merge(merge({ ...DEFAULTS, environment } as DeployConfig, OVERRIDES[environment]), extra);
  const problems = validate(merged);
  if (problems.length) throw new DeployConfigError(environment, problems);
  return merged;
}
