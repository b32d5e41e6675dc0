import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-27';
import type { DeployConfig } from '../config';
import { appDeployment, appEnv, disruptionBudget, metadata, MOUNTS, selectorLabels } from './common';

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

    const { env, envFrom, files } = appEnv(c, { redis: true });
    // The dashboard's password; without the (optional) Secret the producer serves no dashboard.
    env.push({
      name: 'DASHBOARD_PASSWORD',
      valueFrom: { secretKeyRef: { name: c.producer.dashboard.secretName, key: 'password', optional: true } },
    });
    // The API's bearer tokens: a file from the Secret, not an environment variable (which
    // `kubectl describe pod` and crash reporters show). Not optional: without the Secret
    // the pod waits rather than serving an open API.
    if (c.producer.apiTokensSecretName !== '') {
      const volume = 'api-tokens';
      files.push({
        volume: {
          name: volume,
          secret: {
            secretName: c.producer.apiTokensSecretName,
            items: [{ key: 'tokens', path: 'tokens' }],
            defaultMode: 0o440,
          },
        },
        mount: { name: volume, mountPath: MOUNTS.apiTokens, readOnly: true },
      });
      env.push({ name: 'API_TOKENS_FILE', value: `${MOUNTS.apiTokens}/tokens` });
    }
    // No `replicas`: the HorizontalPodAutoscaler below owns the count.
    appDeployment(this, c, 'producer', this.name, {
      args: ['producer'],
      ports: [{ name: 'http', containerPort: port, protocol: 'TCP' }],
      env,
      envFrom,
      files,
      resources: c.producer.resources,
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

    disruptionBudget(this, c, 'producer', this.name, c.producer.maxUnavailable);
  }
}
