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

export interface ProducerProps {
  readonly config: DeployConfig;
}

/**
 * The producer API: a Deployment scaled by an HPA on CPU (so it has no
 * `replicas` of its own), its Service, a PodDisruptionBudget and a
 * ServiceAccount without an API token.
 */
export class Producer extends Construct {
  readonly name: string;

  constructor(scope: Construct, id: string, props: ProducerProps) {
    super(scope, id);
    const c = props.config;
    this.name = `${c.name}-producer`;
    const port = c.producer.port;

    new k8s.KubeServiceAccount(this, 'ServiceAccount', {
      metadata: metadata(c, 'producer', this.name),
      automountServiceAccountToken: false,
    });

    const { env, envFrom } = appEnv(c, { redis: true });
    // The dashboard's password; without the (optional) Secret the producer serves no dashboard.
    env.push({
      name: 'DASHBOARD_PASSWORD',
      valueFrom: { secretKeyRef: { name: c.producer.dashboard.secretName, key: 'password', optional: true } },
    });
    new k8s.KubeDeployment(this, 'Deployment', {
      metadata: metadata(c, 'producer', this.name),
      spec: {
        // No `replicas`: the HorizontalPodAutoscaler below owns the count.
        selector: { matchLabels: selectorLabels(c, 'producer') },
        strategy: {
          type: 'RollingUpdate',
          rollingUpdate: {
            maxSurge: k8s.IntOrString.fromString('25%'),
            maxUnavailable: k8s.IntOrString.fromNumber(0),
          },
        },
        template: {
          metadata: { labels: metadata(c, 'producer', this.name).labels },
          spec: {
            serviceAccountName: this.name,
            automountServiceAccountToken: false,
            securityContext: podSecurityContext(),
            terminationGracePeriodSeconds: terminationGracePeriodSeconds(c),
            topologySpreadConstraints: topologySpread(c, 'producer'),
            volumes: [TMP_VOLUME],
            containers: [
              {
                name: 'producer',
                image: image(c),
                imagePullPolicy: c.image.pullPolicy,
                args: ['producer'],
                ports: [{ name: 'http', containerPort: port, protocol: 'TCP' }],
                env,
                envFrom,
                resources: resources(c.producer.resources),
                securityContext: containerSecurityContext(),
                volumeMounts: [TMP_MOUNT],
                // Ready only when Redis and PostgreSQL answer; alive as long as the event loop does.
                readinessProbe: {
                  httpGet: { path: '/readyz', port: k8s.IntOrString.fromString('http') },
                  periodSeconds: 5,
                  timeoutSeconds: 3,
                  failureThreshold: 3,
                },
                livenessProbe: {
                  httpGet: { path: '/healthz', port: k8s.IntOrString.fromString('http') },
                  initialDelaySeconds: 10,
                  periodSeconds: 10,
                  timeoutSeconds: 3,
                  failureThreshold: 6,
                },
              },
            ],
          },
        },
      },
    });

    new k8s.KubeService(this, 'Service', {
      metadata: metadata(c, 'producer', this.name),
      spec: {
        type: 'ClusterIP',
        selector: selectorLabels(c, 'producer'),
        ports: [{ name: 'http', port: 80, targetPort: k8s.IntOrString.fromString('http'), protocol: 'TCP' }],
      },
    });

    new k8s.KubeHorizontalPodAutoscalerV2(this, 'Autoscaler', {
      metadata: metadata(c, 'producer', this.name),
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: this.name },
        minReplicas: c.producer.minReplicas,
        maxReplicas: c.producer.maxReplicas,
        metrics: [
          {
            type: 'Resource',
            resource: {
              name: 'cpu',
              target: { type: 'Utilization', averageUtilization: c.producer.cpuUtilization },
            },
          },
        ],
      },
    });

    new k8s.KubePodDisruptionBudget(this, 'Budget', {
      metadata: metadata(c, 'producer', this.name),
      spec: {
        maxUnavailable: k8s.IntOrString.fromNumber(c.producer.maxUnavailable),
        selector: { matchLabels: selectorLabels(c, 'producer') },
      },
    });
  }
}
