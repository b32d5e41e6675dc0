import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { buildApp, renderEnvironment } from '../../cdk8s/charts';
import {
  DEFAULTS,
  ENVIRONMENTS,
  OVERRIDES,
  resolveConfig,
  DeployConfigError,
  type EnvironmentName,
} from '../../cdk8s/config';
import { IMPORT_HEADER, CRD_FILES } from '../../cdk8s/import-keda';
import { coreObjectProblems, CORE_KINDS, loadCrdValidator, referenceProblems } from '../../cdk8s/validate';
import { configSchema, loadProducerConfig, loadWorkerConfig } from '../../src/config';
import { QueueKeys } from '../../src/queue/keys';
import {
  compileFormula,
  desiredReplicas,
  initialAutoscalerState,
  loadScaledObjectModel,
  scaledObjectModel,
  scalingSignalsFrom,
  steadyStateReplicas,
  type AutoscalerState,
} from '../../src/scaling';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const ROOT = path.join(__dirname, '..', '..');
const CHARTS = path.join(ROOT, 'charts');

/** The synthesized objects of one environment, parsed as kubectl would (YAML 1.1, all documents). */
function objectsOf(files: Map<string, string>): Json[] {
  const out: Json[] = [];
  for (const [, text] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
    for (const doc of parseAllDocuments(text, { version: '1.1' })) {
      const o = doc.toJS() as Json | null;
      if (o) out.push(o);
    }
  }
  return out;
}

const rendered = Object.fromEntries(ENVIRONMENTS.map((e) => [e, renderEnvironment(e)])) as Record<
  EnvironmentName,
  Map<string, string>
>;
const objects = Object.fromEntries(ENVIRONMENTS.map((e) => [e, objectsOf(rendered[e])])) as Record<
  EnvironmentName,
  Json[]
>;
const find = (env: EnvironmentName, kind: string, pred: (o: Json) => boolean = () => true): Json[] =>
  objects[env].filter((o) => o.kind === kind && pred(o));
const one = (env: EnvironmentName, kind: string, name?: string): Json => {
  const found = find(env, kind, (o) => name === undefined || o.metadata.name === name);
  if (found.length !== 1)
    throw new Error(`expected one ${kind}${name ? ` ${name}` : ''} in ${env}, found ${found.length}`);
  return found[0]!;
};

describe('charts/ is what cdk8s/ synthesizes (run `npm run synth` after changing cdk8s/)', () => {
  it.each(ENVIRONMENTS)('charts/%s has exactly the synthesized files, byte for byte', (env) => {
    const dir = path.join(CHARTS, env);
    const onDisk = fs.existsSync(dir)
      ? fs
          .readdirSync(dir)
          .filter((f) => f.endsWith('.yaml'))
          .sort()
      : [];
    expect(onDisk).toEqual([...rendered[env].keys()].sort());
    for (const [name, text] of rendered[env]) {
      const disk = fs.readFileSync(path.join(dir, name), 'utf8');
      if (disk !== text)
        throw new Error(`charts/${env}/${name} is stale: run \`npm run synth\` and commit charts/`);
    }
  });

  it('synthesis is deterministic (no timestamps, stable order)', () => {
    for (const env of ENVIRONMENTS) expect(renderEnvironment(env)).toEqual(rendered[env]);
    expect([...rendered.dev.values()].join('')).not.toMatch(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/);
  });
});

describe('KEDA CRDs and imports', () => {
  it('cdk8s/crds holds the four upstream CRDs, byte-identical to the sha256 in SOURCE.md', () => {
    const source = fs.readFileSync(path.join(ROOT, 'cdk8s', 'crds', 'SOURCE.md'), 'utf8');
    for (const file of CRD_FILES) {
      const sha = crypto
        .createHash('sha256')
        .update(fs.readFileSync(path.join(ROOT, 'cdk8s', 'crds', file)))
        .digest('hex');
      expect(source).toContain(`\`crds/${file}\` | \`${sha}\``);
    }
  });

  it('the generated imports carry the do-not-edit header and a class per CRD kind', () => {
    const text = fs.readFileSync(path.join(ROOT, 'cdk8s', 'imports', 'keda-keda.sh.ts'), 'utf8');
    expect(text.startsWith(IMPORT_HEADER)).toBe(true);
    for (const kind of [
      'ScaledObject',
      'ScaledJob',
      'TriggerAuthentication',
      'ClusterTriggerAuthentication',
    ]) {
      expect(text).toContain(`export class ${kind} extends ApiObject`);
    }
  });
});

describe.each(ENVIRONMENTS)('%s manifests', (env) => {
  const crd = loadCrdValidator();
  const config = resolveConfig(env);

  it('every KEDA object is valid against its CRD schema, unknown fields rejected', () => {
    const keda = objects[env].filter((o) => String(o.apiVersion).startsWith('keda.sh/'));
    expect(keda.map((o) => o.kind).sort()).toEqual(['ScaledObject', 'TriggerAuthentication']);
    for (const o of keda)
      expect({ [`${o.kind}/${o.metadata.name}`]: crd.validate(o) }).toEqual({
        [`${o.kind}/${o.metadata.name}`]: [],
      });
  });

  it('the strict CRD validator does reject a typo, a wrong type and min > max', () => {
    const so = structuredClone(one(env, 'ScaledObject'));
    so.spec.cooldownPerid = 10;
    so.spec.pollingInterval = '5';
    so.spec.triggers[0].metadata.listName = 7;
    so.spec.minReplicaCount = so.spec.maxReplicaCount + 1;
    so.spec.advanced.scalingModifiers.metricType = 'Utilization';
    const problems = crd.validate(so).join('\n');
    expect(problems).toMatch(/unknown field "cooldownPerid"/);
    expect(problems).toMatch(/\/spec\/pollingInterval must be integer/);
    expect(problems).toMatch(/\/spec\/triggers\/0\/metadata\/listName must be string/);
    expect(problems).toMatch(/minReplicaCount must be less than or equal to maxReplicaCount/);
    expect(problems).toMatch(/scalingModifiers\/metricType must be equal to one of the allowed values/);
  });

  it('every core object has a known kind/apiVersion, its required fields and valid names', () => {
    // KEDA's kinds are checked against their CRDs above; the Prometheus operator's in observability-metrics.test.ts.
    const core = objects[env].filter(
      (o) =>
        !String(o.apiVersion).startsWith('keda.sh/') &&
        !String(o.apiVersion).startsWith('monitoring.coreos.com/'),
    );
    for (const o of core) expect(Object.keys(CORE_KINDS)).toContain(o.kind);
    expect(core.flatMap(coreObjectProblems)).toEqual([]);
  });

  it('the core checks do catch a broken object (missing image, selector mismatch, unnamed probe port, bad name)', () => {
    const d = structuredClone(one(env, 'Deployment', 'tradefleet-producer'));
    delete d.spec.template.spec.containers[0].image;
    d.spec.selector.matchLabels['app.kubernetes.io/component'] = 'other';
    d.spec.template.spec.containers[0].readinessProbe.httpGet.port = 'metrics';
    d.metadata.name = 'Tradefleet_Producer';
    const problems = coreObjectProblems(d).join('\n');
    expect(problems).toMatch(/image is required/);
    expect(problems).toMatch(/spec.selector does not match the template labels/);
    expect(problems).toMatch(/readinessProbe refers to port "metrics"/);
    expect(problems).toMatch(/is not a DNS-1123 subdomain/);
    const orphan = {
      ...one(env, 'PodDisruptionBudget', 'tradefleet-worker'),
      spec: { maxUnavailable: 1, selector: { matchLabels: { app: 'none' } } },
    };
    expect(referenceProblems([...objects[env], orphan]).join('\n')).toMatch(
      /its selector matches no pod template/,
    );
  });

  it('references resolve: selectors match pods, targets, ServiceAccounts, ConfigMaps and Secrets exist', () => {
    const external =
      env === 'prod'
        ? [config.redis.secretName, config.postgres.secretName, config.producer.apiTokensSecretName]
        : [];
    expect(referenceProblems(objects[env], external)).toEqual([]);
    // The API tokens' Secret is mounted, so it is checked like an env reference.
    if (env === 'prod')
      expect(referenceProblems(objects[env], external.slice(0, 2))).toEqual([
        'Deployment/tradefleet-producer: Secret tradefleet-api-tokens (volume api-tokens) does not exist',
      ]);
  });

  it('secrets reach the containers only by reference: no password, token or URL as a plain value; the API tokens as a mounted Secret file', () => {
    for (const w of objects[env].filter((o) => ['Deployment', 'StatefulSet', 'Job'].includes(o.kind))) {
      for (const c of w.spec.template.spec.containers) {
        for (const e of c.env ?? []) {
          if (/PASSWORD|TOKEN|SECRET|_URL$/.test(e.name) && !e.name.endsWith('_FILE'))
            expect({ where: `${w.metadata.name}/${e.name}`, value: e.value }).toEqual({
              where: `${w.metadata.name}/${e.name}`,
              value: undefined,
            });
        }
      }
    }
    const pod = one(env, 'Deployment', 'tradefleet-producer').spec.template.spec;
    const c = pod.containers[0];
    const file = c.env.find((e: Json) => e.name === 'API_TOKENS_FILE').value as string;
    const mount = c.volumeMounts.find((m: Json) => file.startsWith(`${m.mountPath}/`));
    expect(mount).toMatchObject({ name: 'api-tokens', readOnly: true });
    expect(pod.volumes.find((v: Json) => v.name === mount.name).secret).toEqual({
      secretName: config.producer.apiTokensSecretName,
      items: [{ key: 'tokens', path: file.slice(mount.mountPath.length + 1) }],
      defaultMode: 0o440,
    });
    // Workers neither need nor see the API tokens.
    const worker = one(env, 'Deployment', 'tradefleet-worker').spec.template.spec;
    expect(JSON.stringify(worker)).not.toMatch(/api-tokens|API_TOKENS/);
  });

  it('the worker Deployment has no replicas field (the ScaledObject owns it), nor the HPA-scaled producer', () => {
    expect('replicas' in one(env, 'Deployment', 'tradefleet-worker').spec).toBe(false);
    expect('replicas' in one(env, 'Deployment', 'tradefleet-producer').spec).toBe(false);
    expect(one(env, 'ScaledObject').spec.scaleTargetRef).toEqual({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      name: 'tradefleet-worker',
    });
    expect(one(env, 'HorizontalPodAutoscaler').spec.scaleTargetRef.name).toBe('tradefleet-producer');
  });

  it('every trigger name the formula uses exists, and the triggers read the QueueKeys signal keys', () => {
    const so = one(env, 'ScaledObject');
    const names = so.spec.triggers.map((t: Json) => t.name);
    const formula = compileFormula(so.spec.advanced.scalingModifiers.formula, names);
    expect(formula.names.every((n) => names.includes(n))).toBe(true);
    expect(formula.names).toEqual(['backlog', 'pending']);
    const keys = new QueueKeys(one(env, 'ConfigMap', 'tradefleet-config').data.TRADEFLEET_NAMESPACE);
    const byName = Object.fromEntries(so.spec.triggers.map((t: Json) => [t.name, t.metadata.listName]));
    expect(byName).toEqual({ pending: keys.pending, backlog: keys.backlog });
    for (const t of so.spec.triggers) {
      expect(t).toMatchObject({
        type: 'redis',
        metricType: 'AverageValue',
        authenticationRef: { name: 'tradefleet-redis' },
      });
    }
  });

  it('the TriggerAuthentication reads the Redis address and password from the Secret', () => {
    expect(one(env, 'TriggerAuthentication').spec.secretTargetRef).toEqual([
      { parameter: 'address', name: config.redis.secretName, key: 'address' },
      { parameter: 'password', name: config.redis.secretName, key: 'password' },
    ]);
  });

  it('the ScaledObject carries the config numbers: polling, cooldown, min/max, fallback, fast scale-up, stabilized scale-down', () => {
    const spec = one(env, 'ScaledObject').spec;
    expect(spec).toMatchObject({
      pollingInterval: config.scaling.pollingIntervalSeconds,
      cooldownPeriod: config.scaling.cooldownPeriodSeconds,
      minReplicaCount: 0,
      maxReplicaCount: config.scaling.maxReplicas,
      fallback: {
        failureThreshold: config.scaling.fallback.failureThreshold,
        replicas: config.scaling.fallback.replicas,
      },
    });
    const b = spec.advanced.horizontalPodAutoscalerConfig.behavior;
    expect(b.scaleUp.stabilizationWindowSeconds).toBe(0);
    expect(b.scaleDown.stabilizationWindowSeconds).toBeGreaterThan(0);
    // KEDA's fallback needs an integer target and an AverageValue composite metric.
    expect(spec.advanced.scalingModifiers.target).toMatch(/^[1-9]\d*$/);
    expect(spec.advanced.scalingModifiers.metricType).toBe('AverageValue');
  });

  describe('replicas the synthesized ScaledObject gives (src/scaling over its own numbers)', () => {
    const model = scaledObjectModel(one(env, 'ScaledObject'));
    const keys = new QueueKeys(one(env, 'ConfigMap', 'tradefleet-config').data.TRADEFLEET_NAMESPACE);
    const C = Number(one(env, 'ConfigMap', 'tradefleet-config').data.WORKER_CONCURRENCY);
    const sig = (pendingPartitions: number, backlog: number) =>
      scalingSignalsFrom(keys, { pendingPartitions, backlog });
    it.each([
      // One hot partition with 100,000 trades: one partition can use one worker -> 1.
      { scenario: 'one hot partition, 100,000 trades', p: 1, b: 100_000, expected: () => 1 },
      // 400 partitions with work (1,000 trades each): 400 / C = 25 wanted, capped at maxReplicaCount.
      {
        scenario: '400 partitions with work',
        p: 400,
        b: 400_000,
        expected: () => Math.min(Math.ceil(400 / C), model.maxReplicaCount),
      },
      // Idle: nothing pending -> inactive -> 0 (minReplicaCount 0).
      { scenario: 'idle', p: 0, b: 0, expected: () => 0 },
      // One trade in flight: active -> at least one worker.
      { scenario: 'one trade in flight', p: 1, b: 1, expected: () => 1 },
      // C partitions: exactly one full worker; C + 1: two.
      { scenario: 'C partitions', p: C, b: 1_000_000, expected: () => 1 },
      { scenario: 'C + 1 partitions', p: C + 1, b: 1_000_000, expected: () => 2 },
    ])('$scenario -> expected', ({ p, b, expected }) => {
      expect(steadyStateReplicas(model, sig(p, b))).toBe(expected());
    });

    // More partitions with work (1,000 trades each) than maxReplicaCount workers can drain at once.
    const burst = C * (model.maxReplicaCount + 5);
    it('a burst of partitions is capped at maxReplicaCount, which is below what the partitions could use', () => {
      expect(Math.ceil(burst / C)).toBeGreaterThan(model.maxReplicaCount);
      expect(steadyStateReplicas(model, sig(burst, burst * 1000))).toBe(model.maxReplicaCount);
    });

    it('a burst through KEDA + HPA: activation, scale-out to the cap, drain, back to zero after the cooldown', () => {
      let s: AutoscalerState = initialAutoscalerState(0);
      const poll = model.pollingIntervalSeconds * 1000;
      const seen: number[] = [];
      let t = 0;
      for (; t <= 120_000; t += poll) {
        const d = desiredReplicas(sig(burst, burst * 1000), model, s, t);
        s = d.state;
        seen.push(d.replicas);
      }
      expect(seen[0]).toBe(1); // KEDA: 0 -> 1 on activation
      expect(Math.max(...seen)).toBe(model.maxReplicaCount); // the HPA: up to the cap, never past it
      expect(seen).toEqual([...seen].sort((a, b) => a - b)); // monotonic while the burst lasts
      const drainedAt = t;
      while (s.replicas > 0) {
        t += poll;
        const d = desiredReplicas(sig(0, 0), model, s, t);
        s = d.state;
        if (t - drainedAt > 3_600_000) throw new Error('never scaled back to zero');
      }
      // KEDA scales to zero once cooldownPeriod has passed since the last active poll.
      expect(t - (drainedAt - poll)).toBeGreaterThanOrEqual(model.cooldownPeriodSeconds * 1000);
      expect(t - (drainedAt - poll)).toBeLessThan(model.cooldownPeriodSeconds * 1000 + 2 * poll);
    });
  });

  it('the ConfigMap holds only non-secret src/config variables, valid for the producer and the worker', () => {
    const cm = one(env, 'ConfigMap', 'tradefleet-config').data as Record<string, string>;
    for (const k of Object.keys(cm)) expect(Object.keys(configSchema)).toContain(k);
    expect(Object.keys(cm)).not.toContain('REDIS_URL');
    expect(Object.keys(cm)).not.toContain('DATABASE_URL');
    const env_ = { ...cm, REDIS_URL: 'redis://x:6379', DATABASE_URL: 'postgres://x/db' };
    expect(loadWorkerConfig(env_).concurrency).toBe(config.scaling.concurrency);
    expect(loadProducerConfig(env_).port).toBe(config.producer.port);
    // No Secret value appears in any ConfigMap.
    const secretValues = find(env, 'Secret').flatMap(
      (s) => Object.values({ ...s.data, ...s.stringData }) as string[],
    );
    for (const v of Object.values(cm)) for (const sv of secretValues) expect(v.includes(sv)).toBe(false);
    for (const v of Object.values(cm)) expect(v).not.toMatch(/:\/\/[^/\s]*:[^@/\s]*@/); // no credentials in a URL
  });

  it('SIGTERM drain fits: terminationGracePeriodSeconds exceeds SHUTDOWN_TIMEOUT_MS with a margin', () => {
    const shutdownMs = Number(one(env, 'ConfigMap', 'tradefleet-config').data.SHUTDOWN_TIMEOUT_MS);
    for (const name of ['tradefleet-worker', 'tradefleet-producer']) {
      const grace = one(env, 'Deployment', name).spec.template.spec.terminationGracePeriodSeconds as number;
      expect(grace * 1000 - shutdownMs).toBeGreaterThanOrEqual(5000);
    }
  });

  it('every pod is non-root, read-only, capability-free, RuntimeDefault seccomp, without an API token, with requests and limits', () => {
    for (const w of objects[env].filter((o) => ['Deployment', 'StatefulSet', 'Job'].includes(o.kind))) {
      const pod = w.spec.template.spec;
      const where = `${w.kind}/${w.metadata.name}`;
      expect({ where, sc: pod.securityContext }).toMatchObject({
        where,
        sc: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
      });
      expect({ where, automount: pod.automountServiceAccountToken }).toEqual({ where, automount: false });
      for (const c of pod.containers) {
        expect({ where, sc: c.securityContext }).toMatchObject({
          where,
          sc: {
            runAsNonRoot: true,
            readOnlyRootFilesystem: true,
            allowPrivilegeEscalation: false,
            capabilities: { drop: ['ALL'] },
          },
        });
        expect(c.resources.requests).toEqual(
          expect.objectContaining({ cpu: expect.anything(), memory: expect.anything() }),
        );
        expect(c.resources.limits).toEqual(
          expect.objectContaining({ cpu: expect.anything(), memory: expect.anything() }),
        );
      }
    }
    for (const sa of find(env, 'ServiceAccount')) expect(sa.automountServiceAccountToken).toBe(false);
  });

  it('producer and workers spread over zones and hosts, and have a PodDisruptionBudget', () => {
    for (const name of ['tradefleet-worker', 'tradefleet-producer']) {
      const keysUsed = one(env, 'Deployment', name).spec.template.spec.topologySpreadConstraints.map(
        (t: Json) => t.topologyKey,
      );
      expect(keysUsed).toEqual(['topology.kubernetes.io/zone', 'kubernetes.io/hostname']);
      expect(one(env, 'PodDisruptionBudget', name).spec.maxUnavailable).toBe(1);
    }
  });

  it('the producer has /readyz readiness and /healthz liveness probes on its port', () => {
    const c = one(env, 'Deployment', 'tradefleet-producer').spec.template.spec.containers[0];
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(c.ports).toEqual([{ name: 'http', containerPort: config.producer.port, protocol: 'TCP' }]);
  });

  it('network: workers get ingress only from Prometheus on the metrics port and egress only to Redis, PostgreSQL and DNS; the producer is reachable on its port', () => {
    const worker = one(env, 'NetworkPolicy', 'tradefleet-worker').spec;
    expect(worker.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(worker.ingress).toEqual([
      {
        from: [
          {
            namespaceSelector: {
              matchLabels: { 'kubernetes.io/metadata.name': config.monitoring.prometheusNamespace },
            },
          },
        ],
        ports: [{ protocol: 'TCP', port: config.monitoring.metricsPort }],
      },
    ]);
    const metricsPort = one(env, 'Deployment', 'tradefleet-worker').spec.template.spec.containers[0].ports;
    expect(metricsPort).toEqual([
      { name: 'metrics', containerPort: config.monitoring.metricsPort, protocol: 'TCP' },
    ]);
    expect(one(env, 'ConfigMap', 'tradefleet-config').data.METRICS_PORT).toBe(
      String(config.monitoring.metricsPort),
    );
    const ports = worker.egress.map((r: Json) =>
      r.ports.map((p: Json) => `${p.protocol}/${p.port}`).join(','),
    );
    const redisPort = config.redis.mode === 'external' ? config.redis.port : 6379;
    const pgPort = config.postgres.mode === 'external' ? config.postgres.port : 5432;
    expect(ports).toEqual(['UDP/53,TCP/53', `TCP/${redisPort}`, `TCP/${pgPort}`]);
    const producer = one(env, 'NetworkPolicy', 'tradefleet-producer').spec;
    expect(producer.ingress).toEqual([{ ports: [{ protocol: 'TCP', port: config.producer.port }] }]);
  });

  it('the migration Job runs `tradefleet migrate` once, with PostgreSQL only', () => {
    const job = one(env, 'Job');
    const c = job.spec.template.spec.containers[0];
    expect(c.args).toEqual(['migrate']);
    expect(c.env.map((e: Json) => e.name)).toEqual(['DATABASE_URL', 'DATABASE_PASSWORD']);
    expect(job.spec.template.spec.restartPolicy).toBe('Never');
  });

  it('loadScaledObjectModel reads the committed chart the same way', () => {
    expect(loadScaledObjectModel(path.join(CHARTS, env))).toEqual(
      scaledObjectModel(one(env, 'ScaledObject')),
    );
  });
});

describe('environment specifics', () => {
  it('dev deploys one Redis with AOF + noeviction and one PostgreSQL, as StatefulSets with Services and Secrets', () => {
    const redis = one('dev', 'StatefulSet', 'tradefleet-redis');
    expect(redis.spec.replicas).toBe(1);
    const args = redis.spec.template.spec.containers[0].args.join(' ');
    expect(args).toContain('--appendonly yes --appendfsync everysec --maxmemory-policy noeviction');
    expect(one('dev', 'StatefulSet', 'tradefleet-postgres').spec.serviceName).toBe('tradefleet-postgres');
    expect(one('dev', 'Service', 'tradefleet-redis').spec.clusterIP).toBe('None');
    expect(one('dev', 'Secret', 'tradefleet-redis').stringData).toEqual(
      expect.objectContaining({
        address: expect.any(String),
        password: expect.any(String),
        url: expect.any(String),
      }),
    );
    // KEDA's operator must reach the dev Redis.
    const ingress = one('dev', 'NetworkPolicy', 'tradefleet-redis').spec.ingress[0].from;
    expect(ingress).toContainEqual({
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'keda' } },
    });
  });

  it('dev: the fixed dev credentials appear in Secrets only, never in another object', () => {
    const values = find('dev', 'Secret')
      .flatMap((s) => Object.values({ ...s.data, ...s.stringData }) as string[])
      .flatMap((v) => v.split(/\n/))
      .filter((v) => v.length >= 8);
    expect(values.length).toBeGreaterThanOrEqual(5);
    for (const o of objects.dev.filter((x) => x.kind !== 'Secret')) {
      const text = JSON.stringify(o);
      for (const v of values)
        expect({ where: `${o.kind}/${o.metadata.name}`, leaks: text.includes(v) }).toEqual({
          where: `${o.kind}/${o.metadata.name}`,
          leaks: false,
        });
    }
  });

  it('prod ships no Secret and no data store: Redis and PostgreSQL are external, reached through Secrets', () => {
    expect(find('prod', 'Secret')).toEqual([]);
    expect(find('prod', 'StatefulSet')).toEqual([]);
    const so = one('prod', 'ScaledObject');
    expect(so.spec.triggers.every((t: Json) => t.metadata.enableTLS === 'true')).toBe(true);
  });
});

/** The objects of a config that is not one of the committed environments. */
function objectsForConfig(config: ReturnType<typeof resolveConfig>): Json[] {
  const { app, charts } = buildApp(config);
  app.synthYaml();
  return charts.flatMap((c) => c.toJson() as Json[]);
}

describe('TLS with a private CA, and auth off', () => {
  const config = resolveConfig('prod', {
    redis: { caConfigMap: 'redis-ca' },
    postgres: { caConfigMap: 'postgres-ca' },
  });
  const objs = objectsForConfig(config);
  const get = (kind: string, name?: string) =>
    objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));

  it('mounts the CA ConfigMaps and names the files for every process; KEDA gets TLS and the CA from ConfigMaps', () => {
    for (const [name, vars] of [
      ['tradefleet-producer', ['REDIS_TLS_CA_FILE', 'DATABASE_SSL_CA_FILE']],
      ['tradefleet-worker', ['REDIS_TLS_CA_FILE', 'DATABASE_SSL_CA_FILE']],
    ] as const) {
      const pod = get('Deployment', name)[0]!.spec.template.spec;
      for (const v of vars) {
        const path = pod.containers[0].env.find((e: Json) => e.name === v)?.value as string;
        const mount = pod.containers[0].volumeMounts.find((m: Json) => path.startsWith(`${m.mountPath}/`));
        expect({ v, mount: mount?.readOnly }).toEqual({ v, mount: true });
        expect(pod.volumes.find((x: Json) => x.name === mount.name).configMap.items).toEqual([
          { key: 'ca.crt', path: 'ca.crt' },
        ]);
      }
    }
    const job = get('Job')[0]!.spec.template.spec.containers[0];
    expect(job.env.map((e: Json) => e.name)).toEqual([
      'DATABASE_URL',
      'DATABASE_PASSWORD',
      'DATABASE_SSL_CA_FILE',
    ]);
    const auth = get('TriggerAuthentication')[0]!;
    expect(auth.spec.configMapTargetRef).toEqual([
      { parameter: 'tls', name: 'tradefleet-keda-redis-tls', key: 'tls' },
      { parameter: 'ca', name: 'redis-ca', key: 'ca.crt' },
    ]);
    expect(get('ConfigMap', 'tradefleet-keda-redis-tls')[0]!.data).toEqual({ tls: 'enable' });
    // KEDA refuses enableTLS together with the authentication's tls.
    for (const t of get('ScaledObject')[0]!.spec.triggers) expect(t.metadata.enableTLS).toBeUndefined();
    const crd = loadCrdValidator();
    for (const o of objs.filter((x) => String(x.apiVersion).startsWith('keda.sh/')))
      expect(crd.validate(o)).toEqual([]);
    expect(
      referenceProblems(
        objs,
        [config.redis.secretName, config.postgres.secretName, config.producer.apiTokensSecretName],
        ['redis-ca', 'postgres-ca'],
      ),
    ).toEqual([]);
    expect(get('ConfigMap', 'tradefleet-config')[0]!.data.DATABASE_SSL_MODE).toBe('verify-full');
  });

  it('apiTokensSecretName "" mounts no tokens (authentication off, the producer warns)', () => {
    const open = objectsForConfig(resolveConfig('prod', { producer: { apiTokensSecretName: '' } }));
    const producer = open.find((o) => o.kind === 'Deployment' && o.metadata.name === 'tradefleet-producer')!;
    expect(JSON.stringify(producer)).not.toMatch(/api-tokens|API_TOKENS/);
  });

  it('a CA without TLS, or without certificate checks, is refused with the fix', () => {
    expect(() =>
      resolveConfig('dev', { redis: { caConfigMap: 'ca' }, postgres: { caConfigMap: 'ca' } }),
    ).toThrow(
      /redis.caConfigMap="ca" is set but redis.tls is false[\s\S]*postgres.caConfigMap="ca" is set but postgres.sslMode=disable/,
    );
  });
});

describe('deployment config', () => {
  it('dev and prod override the defaults where they differ', () => {
    expect(resolveConfig('dev').scaling.maxReplicas).toBe(OVERRIDES.dev.scaling!.maxReplicas);
    expect(resolveConfig('prod').scaling.concurrency).toBe(DEFAULTS.scaling.concurrency);
  });

  it('reports every problem together, naming the field and the fix', () => {
    let err: unknown;
    try {
      resolveConfig('prod', {
        scaling: { minReplicas: 30, maxReplicas: 20, concurrency: 0 },
        app: { stalledIntervalMs: 60_000 },
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DeployConfigError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/scaling.concurrency=0 must be an integer from 1 to 1000. Fix/);
    expect(msg).toMatch(/scaling.minReplicas=30 is greater than scaling.maxReplicas=20/);
    expect(msg).toMatch(/STALLED_INTERVAL_MS=60000 is greater than LOCK_DURATION_MS/);
  });
});
