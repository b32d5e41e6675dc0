/**
 * Factories shared by the constructs: labels, security contexts, resources,
 * topology spread, and the environment every tradefleet process gets.
 */
import { k8s } from 'cdk8s-plus-27';
import type { Construct } from 'constructs';
import { terminationGracePeriodSeconds, type DeployConfig, type Resources } from '../config';

export type Component = 'producer' | 'worker' | 'migrate' | 'redis' | 'postgres' | 'monitoring';

/** The labels that select a component's pods; never change them on a live Deployment (selectors are immutable). */
export function selectorLabels(c: DeployConfig, component: Component): Record<string, string> {
  return {
    'app.kubernetes.io/name': c.name,
    'app.kubernetes.io/instance': c.environment,
    'app.kubernetes.io/component': component,
  };
}

export function labels(c: DeployConfig, component: Component): Record<string, string> {
  return {
    ...selectorLabels(c, component),
    'app.kubernetes.io/part-of': 'tradefleet',
    'app.kubernetes.io/managed-by': 'cdk8s',
    ...(component === 'redis' || component === 'postgres'
      ? {}
      : { 'app.kubernetes.io/version': c.image.tag }),
  };
}

export function metadata(c: DeployConfig, component: Component, name: string): k8s.ObjectMeta {
  return { name, namespace: c.namespace, labels: labels(c, component) };
}

export function image(c: DeployConfig): string {
  return `${c.image.repository}:${c.image.tag}`;
}

export function resources(r: Resources): k8s.ResourceRequirements {
  return {
    requests: {
      cpu: k8s.Quantity.fromString(r.requests.cpu),
      memory: k8s.Quantity.fromString(r.requests.memory),
    },
    limits: { cpu: k8s.Quantity.fromString(r.limits.cpu), memory: k8s.Quantity.fromString(r.limits.memory) },
  };
}

/** tradefleet's image runs as this numeric user (Dockerfile), so runAsNonRoot can be verified. */
export const APP_UID = 10001;

/** Pod-level: non-root, RuntimeDefault seccomp, files group-owned by the pod's group. */
export function podSecurityContext(uid: number = APP_UID): k8s.PodSecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: uid,
    runAsGroup: uid,
    fsGroup: uid,
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** Container-level: read-only root filesystem, no privilege escalation, every capability dropped. */
export function containerSecurityContext(uid: number = APP_UID): k8s.SecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: uid,
    runAsGroup: uid,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    privileged: false,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

export function topologySpread(c: DeployConfig, component: Component): k8s.TopologySpreadConstraint[] {
  return c.topologySpread.topologyKeys.map((topologyKey) => ({
    maxSkew: c.topologySpread.maxSkew,
    topologyKey,
    whenUnsatisfiable: c.topologySpread.whenUnsatisfiable,
    labelSelector: { matchLabels: selectorLabels(c, component) },
  }));
}

export function configMapName(c: DeployConfig): string {
  return `${c.name}-config`;
}

/** Where mounted files live in the containers (read-only volumes). */
export const MOUNTS = {
  apiTokens: '/var/run/secrets/tradefleet/api-tokens',
  redisCa: '/etc/tradefleet/redis-ca',
  postgresCa: '/etc/tradefleet/postgres-ca',
} as const;

/** A Secret or ConfigMap mounted as files (read-only). */
export interface MountedFile {
  readonly volume: k8s.Volume;
  readonly mount: k8s.VolumeMount;
}

/** A ConfigMap's `ca.crt` mounted at `dir`, named by the variable `variable`. */
function caFile(
  volumeName: string,
  configMap: string,
  dir: string,
  variable: string,
): MountedFile & { readonly env: k8s.EnvVar } {
  return {
    volume: { name: volumeName, configMap: { name: configMap, items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
    mount: { name: volumeName, mountPath: dir, readOnly: true },
    env: { name: variable, value: `${dir}/ca.crt` },
  };
}

/**
 * The environment of a tradefleet container: the non-secret variables from the
 * ConfigMap; the connection URLs (which may carry credentials) and the
 * passwords from the Secrets, by reference (`secretKeyRef`), never as values;
 * private CAs as mounted files. The passwords are optional: a Redis or
 * PostgreSQL without one, or with it in the URL, needs no `password` key.
 */
export function appEnv(
  c: DeployConfig,
  opts: { redis: boolean },
): { env: k8s.EnvVar[]; envFrom: k8s.EnvFromSource[]; files: MountedFile[] } {
  const secret = (name: string, secretName: string, key: string, optional = false): k8s.EnvVar => ({
    name,
    valueFrom: { secretKeyRef: { name: secretName, key, ...(optional ? { optional: true } : {}) } },
  });
  const env: k8s.EnvVar[] = [
    secret('DATABASE_URL', c.postgres.secretName, 'url'),
    secret('DATABASE_PASSWORD', c.postgres.secretName, 'password', true),
  ];
  const files: (MountedFile & { readonly env: k8s.EnvVar })[] = [];
  if (c.postgres.caConfigMap !== '')
    files.push(caFile('postgres-ca', c.postgres.caConfigMap, MOUNTS.postgresCa, 'DATABASE_SSL_CA_FILE'));
  if (opts.redis) {
    env.push(
      secret('REDIS_URL', c.redis.secretName, 'url'),
      secret('REDIS_PASSWORD', c.redis.secretName, 'password', true),
    );
    if (c.redis.caConfigMap !== '')
      files.push(caFile('redis-ca', c.redis.caConfigMap, MOUNTS.redisCa, 'REDIS_TLS_CA_FILE'));
  }
  env.push(...files.map((f) => f.env));
  return {
    env,
    envFrom: [{ configMapRef: { name: configMapName(c) } }],
    files: files.map(({ volume, mount }) => ({ volume, mount })),
  };
}

/** An emptyDir at /tmp: the root filesystem is read-only. */
export const TMP_VOLUME: k8s.Volume = {
  name: 'tmp',
  emptyDir: { sizeLimit: k8s.Quantity.fromString('64Mi') },
};
export const TMP_MOUNT: k8s.VolumeMount = { name: 'tmp', mountPath: '/tmp' };

/** What differs between the app's Deployments: the container's own part. */
export interface AppContainer {
  readonly args: string[];
  readonly ports: k8s.ContainerPort[];
  readonly env: k8s.EnvVar[];
  readonly envFrom: k8s.EnvFromSource[];
  readonly resources: Resources;
  readonly readinessProbe?: k8s.Probe;
  readonly livenessProbe?: k8s.Probe;
  /** Secrets and ConfigMaps mounted as files (read-only). @default none */
  readonly files?: readonly MountedFile[];
}

/**
 * The ServiceAccount (no API token) and the Deployment of one app component,
 * hardened the same way for producer and workers. No `replicas`: an
 * autoscaler (HPA or KEDA) owns the count, and a `replicas` here would fight
 * it on every apply.
 */
export function appDeployment(
  scope: Construct,
  c: DeployConfig,
  component: 'producer' | 'worker',
  name: string,
  container: AppContainer,
): void {
  new k8s.KubeServiceAccount(scope, 'ServiceAccount', {
    metadata: metadata(c, component, name),
    automountServiceAccountToken: false,
  });
  new k8s.KubeDeployment(scope, 'Deployment', {
    metadata: metadata(c, component, name),
    spec: {
      selector: { matchLabels: selectorLabels(c, component) },
      strategy: {
        type: 'RollingUpdate',
        rollingUpdate: {
          maxSurge: k8s.IntOrString.fromString('25%'),
          maxUnavailable: k8s.IntOrString.fromNumber(0),
        },
      },
      template: {
        metadata: { labels: metadata(c, component, name).labels },
        spec: {
          serviceAccountName: name,
          automountServiceAccountToken: false,
          securityContext: podSecurityContext(),
          terminationGracePeriodSeconds: terminationGracePeriodSeconds(c),
          topologySpreadConstraints: topologySpread(c, component),
          volumes: [TMP_VOLUME, ...(container.files ?? []).map((f) => f.volume)],
          containers: [
            {
              name: component,
              image: image(c),
              imagePullPolicy: c.image.pullPolicy,
              args: container.args,
              ports: container.ports,
              env: container.env,
              envFrom: container.envFrom,
              resources: resources(container.resources),
              securityContext: containerSecurityContext(),
              volumeMounts: [TMP_MOUNT, ...(container.files ?? []).map((f) => f.mount)],
              readinessProbe: container.readinessProbe,
              livenessProbe: container.livenessProbe,
            },
          ],
        },
      },
    },
  });
}

/** A PodDisruptionBudget over one component's pods. */
export function disruptionBudget(
  scope: Construct,
  c: DeployConfig,
  component: Component,
  name: string,
  maxUnavailable: number,
): void {
  new k8s.KubePodDisruptionBudget(scope, 'Budget', {
    metadata: metadata(c, component, name),
    spec: {
      maxUnavailable: k8s.IntOrString.fromNumber(maxUnavailable),
      selector: { matchLabels: selectorLabels(c, component) },
    },
  });
}
