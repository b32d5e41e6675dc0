import { Construct } from 'constructs';
import type { DeployConfig } from '../config';
import { appDeployment, appEnv, disruptionBudget } from './common';

export interface WorkersProps {
  readonly config: DeployConfig;
}

/**
 * The worker fleet: a Deployment WITHOUT `replicas` (the KEDA ScaledObject
 * owns the count; a `replicas` here would fight it on every apply), its
 * PodDisruptionBudget and a ServiceAccount without an API token.
 *
 * Scale-in and rollouts send SIGTERM: the worker stops claiming partitions,
 * finishes the batches in hand within SHUTDOWN_TIMEOUT_MS and hands each
 * partition back at its batch boundary, so the pod's
 * terminationGracePeriodSeconds is that deadline plus a margin; a batch cut
 * short anyway is taken over when its lease expires, redelivered and fenced
 * (README, "How it works").
 */
export class Workers extends Construct {
  readonly name: string;

  constructor(scope: Construct, id: string, props: WorkersProps) {
    super(scope, id);
    const c = props.config;
    this.name = `${c.name}-worker`;

    const { env, envFrom, files } = appEnv(c, { redis: true });
    appDeployment(this, c, 'worker', this.name, {
      args: ['worker'],
      // GET /metrics (METRICS_PORT), scraped by the PodMonitor of constructs/monitoring.ts.
      ports: [{ name: 'metrics', containerPort: c.monitoring.metricsPort, protocol: 'TCP' }],
      env,
      envFrom,
      files,
      resources: c.worker.resources,
    });
    disruptionBudget(this, c, 'worker', this.name, c.worker.maxUnavailable);
  }
}
