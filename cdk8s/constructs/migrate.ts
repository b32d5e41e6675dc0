import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-27';
import type { DeployConfig } from '../config';
import {
  appEnv,
  containerSecurityContext,
  image,
  metadata,
  podSecurityContext,
  resources,
  TMP_MOUNT,
  TMP_VOLUME,
} from './common';

export interface MigrationProps {
  readonly config: DeployConfig;
}

/** A Job name is immutable per image: a new release gets a new Job (the old one is left for its logs). */
export function migrationJobName(c: DeployConfig): string {
  const tag = c.image.tag
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return `${c.name}-migrate-${tag}`.slice(0, 63).replace(/-+$/, '');
}

/**
 * `tradefleet migrate` as its own step (STYLE principle 8): the migrations run
 * once per release under their own lock, not on every pod start.
 */
export class Migration extends Construct {
  readonly jobName: string;

  constructor(scope: Construct, id: string, props: MigrationProps) {
    super(scope, id);
    const c = props.config;
    const sa = `${c.name}-migrate`;
    this.jobName = migrationJobName(c);

    new k8s.KubeServiceAccount(this, 'ServiceAccount', {
      metadata: metadata(c, 'migrate', sa),
      automountServiceAccountToken: false,
    });

    const { env, envFrom, files } = appEnv(c, { redis: false });
    new k8s.KubeJob(this, 'Job', {
      metadata: metadata(c, 'migrate', this.jobName),
      spec: {
        backoffLimit: c.migrate.backoffLimit,
        activeDeadlineSeconds: c.migrate.activeDeadlineSeconds,
        template: {
          metadata: { labels: metadata(c, 'migrate', this.jobName).labels },
          spec: {
            restartPolicy: 'Never',
            serviceAccountName: sa,
            automountServiceAccountToken: false,
            securityContext: podSecurityContext(),
            volumes: [TMP_VOLUME, ...files.map((f) => f.volume)],
            containers: [
              {
                name: 'migrate',
                image: image(c),
                imagePullPolicy: c.image.pullPolicy,
                args: ['migrate'],
                env,
                envFrom,
                resources: resources(c.migrate.resources),
                securityContext: containerSecurityContext(),
                volumeMounts: [TMP_MOUNT, ...files.map((f) => f.mount)],
              },
            ],
          },
        },
      },
    });
  }
}
