/**
 * Factories shared by the constructs: labels, security contexts, resources,
 * topology spread, and the environment every tradefleet process gets.
 */
import { k8s } from 'cdk8s-plus-27';
import type { DeployConfig, Resources } from '../config';

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

/**
 * The environment of a tradefleet container: the non-secret variables from the
 * ConfigMap, the connection URLs (which carry credentials) from the Secrets.
 */
export function appEnv(
  c: DeployConfig,
  opts: { redis: boolean },
): { env: k8s.EnvVar[]; envFrom: k8s.EnvFromSource[] } {
  const env: k8s.EnvVar[] = [
    { name: 'DATABASE_URL', valueFrom: { secretKeyRef: { name: c.postgres.secretName, key: 'url' } } },
  ];
  if (opts.redis)
    env.push({ name: 'REDIS_URL', valueFrom: { secretKeyRef: { name: c.redis.secretName, key: 'url' } } });
  return { env, envFrom: [{ configMapRef: { name: configMapName(c) } }] };
}

/** An emptyDir at /tmp: the root filesystem is read-only. */
export const TMP_VOLUME: k8s.Volume = {
  name: 'tmp',
  emptyDir: { sizeLimit: k8s.Quantity.fromString('64Mi') },
};
export const TMP_MOUNT: k8s.VolumeMount = { name: 'tmp', mountPath: '/tmp' };
