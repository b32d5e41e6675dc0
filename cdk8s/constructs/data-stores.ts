/**
 * dev only: a single Redis and a single PostgreSQL inside the cluster, each a
 * StatefulSet with a persistent volume, a headless Service and its credentials
 * in a Secret. Production points at external, managed ones (see docs/deploy.md).
 */
import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-27';
import type { DeployConfig, Resources } from '../config';
import { metadata, resources, selectorLabels, topologySpread, type Component } from './common';

/** uid/gid of the `redis` and `postgres` users in the official Debian-based images. */
const STORE_UID = 999;

function storeSecurity(): { pod: k8s.PodSecurityContext; container: k8s.SecurityContext } {
  return {
    pod: {
      runAsNonRoot: true,
      runAsUser: STORE_UID,
      runAsGroup: STORE_UID,
      fsGroup: STORE_UID,
      seccompProfile: { type: 'RuntimeDefault' },
    },
    container: {
      runAsNonRoot: true,
      runAsUser: STORE_UID,
      runAsGroup: STORE_UID,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
  };
}

/** The in-cluster address of a store's Service. */
export function storeHost(c: DeployConfig, component: 'redis' | 'postgres'): string {
  return `${c.name}-${component}.${c.namespace}.svc.cluster.local`;
}

/** dev credentials: fixed, documented, for a throwaway cluster only. */
export const DEV_REDIS_PASSWORD = 'tradefleet-dev-redis';
export const DEV_POSTGRES_PASSWORD = 'tradefleet-dev-postgres';
export const DEV_DASHBOARD_PASSWORD = 'tradefleet-dev-dashboard';
export const DEV_API_TOKEN = 'tradefleet-dev-api-token-not-secret';

interface StoreSpec {
  readonly component: Extract<Component, 'redis' | 'postgres'>;
  readonly image: string;
  readonly storage: string;
  readonly resources: Resources;
  readonly port: number;
  readonly dataPath: string;
  readonly container: Omit<
    k8s.Container,
    'name' | 'image' | 'ports' | 'resources' | 'securityContext' | 'volumeMounts'
  >;
  readonly extraMounts: readonly k8s.VolumeMount[];
  readonly extraVolumes: readonly k8s.Volume[];
}

function statefulStore(scope: Construct, c: DeployConfig, s: StoreSpec): void {
  const name = `${c.name}-${s.component}`;
  const sec = storeSecurity();
  new k8s.KubeServiceAccount(scope, 'ServiceAccount', {
    metadata: metadata(c, s.component, name),
    automountServiceAccountToken: false,
  });
  // Headless: the StatefulSet's governing Service; its DNS name resolves to the one pod.
  new k8s.KubeService(scope, 'Service', {
    metadata: metadata(c, s.component, name),
    spec: {
      clusterIp: 'None',
      selector: selectorLabels(c, s.component),
      ports: [
        { name: s.component, port: s.port, targetPort: k8s.IntOrString.fromNumber(s.port), protocol: 'TCP' },
      ],
    },
  });
  new k8s.KubeStatefulSet(scope, 'StatefulSet', {
    metadata: metadata(c, s.component, name),
    spec: {
      serviceName: name,
      replicas: 1,
      selector: { matchLabels: selectorLabels(c, s.component) },
      template: {
        metadata: { labels: metadata(c, s.component, name).labels },
        spec: {
          serviceAccountName: name,
          automountServiceAccountToken: false,
          securityContext: sec.pod,
          topologySpreadConstraints: topologySpread(c, s.component),
          volumes: [...s.extraVolumes],
          containers: [
            {
              ...s.container,
              name: s.component,
              image: s.image,
              ports: [{ name: s.component, containerPort: s.port, protocol: 'TCP' }],
              resources: resources(s.resources),
              securityContext: sec.container,
              volumeMounts: [{ name: 'data', mountPath: s.dataPath }, ...s.extraMounts],
            },
          ],
        },
      },
      volumeClaimTemplates: [
        {
          metadata: { name: 'data', labels: selectorLabels(c, s.component) },
          spec: {
            accessModes: ['ReadWriteOnce'],
            resources: { requests: { storage: k8s.Quantity.fromString(s.storage) } },
          },
        },
      ],
    },
  });
}

export interface DevDataStoresProps {
  readonly config: DeployConfig;
}

export class DevDataStores extends Construct {
  constructor(scope: Construct, id: string, props: DevDataStoresProps) {
    super(scope, id);
    const c = props.config;
    if (c.redis.mode !== 'in-cluster' || c.postgres.mode !== 'in-cluster') {
      throw new Error(
        `DevDataStores needs redis.mode and postgres.mode "in-cluster" (environment ${c.environment})`,
      );
    }
    statefulStore(new Construct(this, 'Redis'), c, {
      component: 'redis',
      image: c.redis.image,
      storage: c.redis.storage,
      resources: c.redis.resources,
      port: 6379,
      dataPath: '/data',
      extraMounts: [],
      extraVolumes: [],
      container: {
        // The queue's correctness needs every accepted trade kept (AOF, fsync every
        // second) and never evicted (noeviction: writes fail instead of dropping keys).
        command: ['redis-server'],
        args: [
          '--appendonly',
          'yes',
          '--appendfsync',
          'everysec',
          '--maxmemory-policy',
          'noeviction',
          '--dir',
          '/data',
          '--requirepass',
          '$(REDIS_PASSWORD)',
        ],
        env: [
          {
            name: 'REDIS_PASSWORD',
            valueFrom: { secretKeyRef: { name: c.redis.secretName, key: 'password' } },
          },
        ],
        readinessProbe: { tcpSocket: { port: k8s.IntOrString.fromNumber(6379) }, periodSeconds: 5 },
        livenessProbe: {
          tcpSocket: { port: k8s.IntOrString.fromNumber(6379) },
          initialDelaySeconds: 10,
          periodSeconds: 10,
        },
      },
    });

    statefulStore(new Construct(this, 'Postgres'), c, {
      component: 'postgres',
      image: c.postgres.image,
      storage: c.postgres.storage,
      resources: c.postgres.resources,
      port: 5432,
      dataPath: '/var/lib/postgresql/data',
      extraMounts: [
        { name: 'run', mountPath: '/var/run/postgresql' },
        { name: 'tmp', mountPath: '/tmp' },
      ],
      extraVolumes: [
        { name: 'run', emptyDir: {} },
        { name: 'tmp', emptyDir: {} },
      ],
      container: {
        env: [
          { name: 'POSTGRES_USER', value: 'tradefleet' },
          { name: 'POSTGRES_DB', value: 'tradefleet' },
          {
            name: 'POSTGRES_PASSWORD',
            valueFrom: { secretKeyRef: { name: c.postgres.secretName, key: 'password' } },
          },
          // A subdirectory: the volume's root holds lost+found on many provisioners.
          { name: 'PGDATA', value: '/var/lib/postgresql/data/pgdata' },
        ],
        readinessProbe: {
          exec: { command: ['pg_isready', '-U', 'tradefleet', '-d', 'tradefleet', '-h', '127.0.0.1'] },
          periodSeconds: 5,
        },
        livenessProbe: {
          exec: { command: ['pg_isready', '-U', 'tradefleet', '-d', 'tradefleet', '-h', '127.0.0.1'] },
          initialDelaySeconds: 30,
          periodSeconds: 10,
        },
      },
    });
  }
}

/** dev only: the Secrets the processes, KEDA and the dev stores read (prod creates its own; see docs/deploy.md). */
export class DevSecrets extends Construct {
  constructor(scope: Construct, id: string, props: DevDataStoresProps) {
    super(scope, id);
    const c = props.config;
    const redisHost = storeHost(c, 'redis');
    const pgHost = storeHost(c, 'postgres');
    new k8s.KubeSecret(this, 'RedisSecret', {
      metadata: {
        ...metadata(c, 'redis', c.redis.secretName),
        annotations: { 'tradefleet.io/dev-only': 'fixed development credentials' },
      },
      type: 'Opaque',
      // The processes read `password` (REDIS_PASSWORD, which wins over the URL's) and KEDA
      // reads it too; the URL carries it as well, for tools given only REDIS_URL.
      stringData: {
        address: `${redisHost}:6379`,
        password: DEV_REDIS_PASSWORD,
        url: `redis://:${DEV_REDIS_PASSWORD}@${redisHost}:6379/0`,
      },
    });
    new k8s.KubeSecret(this, 'PostgresSecret', {
      metadata: {
        ...metadata(c, 'postgres', c.postgres.secretName),
        annotations: { 'tradefleet.io/dev-only': 'fixed development credentials' },
      },
      type: 'Opaque',
      stringData: {
        password: DEV_POSTGRES_PASSWORD,
        url: `postgres://tradefleet:${DEV_POSTGRES_PASSWORD}@${pgHost}:5432/tradefleet`,
      },
    });
    new k8s.KubeSecret(this, 'DashboardSecret', {
      metadata: {
        ...metadata(c, 'producer', c.producer.dashboard.secretName),
        annotations: { 'tradefleet.io/dev-only': 'fixed development credentials' },
      },
      type: 'Opaque',
      stringData: { password: DEV_DASHBOARD_PASSWORD },
    });
    if (c.producer.apiTokensSecretName !== '') {
      new k8s.KubeSecret(this, 'ApiTokensSecret', {
        metadata: {
          ...metadata(c, 'producer', c.producer.apiTokensSecretName),
          annotations: { 'tradefleet.io/dev-only': 'fixed development credentials' },
        },
        type: 'Opaque',
        // One token a line; clients send it as "Authorization: Bearer <token>".
        stringData: { tokens: `${DEV_API_TOKEN}\n` },
      });
    }
  }
}
