import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-27';
import { terminationGracePeriodSeconds, type DeployConfig } from '../config';
import {
  appEnv,
  containerSecurityContext,
  image,
  metadata,
  podSecurityContext,
  resources,
  selectorLabels,
  TMP_MOUNT,
  TMP_VOLUME,
  topologySpread,
} from './common';

export interface WorkersProps {
  readonly config: DeployConfig;
}

/**
 * The worker fleet: a Deployment WITHOUT `replicas` (the KEDA ScaledObject
 * owns the count; a `replicas` here would fight it on every apply), its
 * PodDisruptionBudget and a ServiceAccount without an API token.
 *
 * Scale-in and rollouts send SIGTERM: the worker stops taking drain tokens and
 * finishes the batches in hand within SHUTDOWN_TIMEOUT_MS, so the pod's
 * terminationGracePeriodSeconds is that deadline plus a margin; a batch cut
 * short anyway is redelivered and fenced (DESIGN.md section 2).
 */
export class Workers extends Construct {
  readonly name: string;

  constructor(scope: Construct, id: string, props: WorkersProps) {
    super(scope, id);
    const c = props.config;
    this.name = `${c.name}-worker`;

    new k8s.KubeServiceAccount(this, 'ServiceAccount', {
      metadata: metadata(c, 'worker', this.name),
      automountServiceAccountToken: false,
    });

    const { env, envFrom } = appEnv(c, { redis: true });
    new k8s.KubeDeployment(this, 'Deployment', {
      metadata: metadata(c, 'worker', this.name),
      spec: {
        selector: { matchLabels: selectorLabels(c, 'worker') },
        strategy: {
          type: 'RollingUpdate',
          rollingUpdate: {
            maxSurge: k8s.IntOrString.fromString('25%'),
            maxUnavailable: k8s.IntOrString.fromNumber(0),
          },
        },
        template: {
          metadata: { labels: metadata(c, 'worker', this.name).labels },
          spec: {
            serviceAccountName: this.name,
            automountServiceAccountToken: false,
            securityContext: podSecurityContext(),
            terminationGracePeriodSeconds: terminationGracePeriodSeconds(c),
            topologySpreadConstraints: topologySpread(c, 'worker'),
            volumes: [TMP_VOLUME],
            containers: [
              {
                name: 'worker',
                image: image(c),
                imagePullPolicy: c.image.pullPolicy,
                args: ['worker'],
                // GET /metrics (METRICS_PORT), scraped by the PodMonitor of constructs/monitoring.ts.
                ports: [{ name: 'metrics', containerPort: c.monitoring.metricsPort, protocol: 'TCP' }],
                env,
                envFrom,
                resources: resources(c.worker.resources),
                securityContext: containerSecurityContext(),
                volumeMounts: [TMP_MOUNT],
              },
            ],
          },
        },
      },
    });

    new k8s.KubePodDisruptionBudget(this, 'Budget', {
      metadata: metadata(c, 'worker', this.name),
      spec: {
        maxUnavailable: k8s.IntOrString.fromNumber(c.worker.maxUnavailable),
        selector: { matchLabels: selectorLabels(c, 'worker') },
      },
    });
  }
}
