import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-27';
import type { DeployConfig } from '../config';
import {
  ScaledObject,
  ScaledObjectSpecAdvancedScalingModifiersMetricType,
  ScaledObjectSpecFallbackBehavior,
  ScaledObjectSpecTriggersAuthenticationRefKind,
  TriggerAuthentication,
} from '../imports/keda-keda.sh';
import { QueueKeys } from '../../src/queue/keys';
import { scalingModifiersFor, TRIGGER_NAMES } from '../../src/scaling/design';
import { metadata } from './common';

export interface WorkerScalingProps {
  readonly config: DeployConfig;
  /** The worker Deployment's name. */
  readonly target: string;
}

/**
 * The KEDA ScaledObject of DESIGN.md section 4 and the TriggerAuthentication
 * it connects to Redis with.
 *
 * KEDA's redis scaler measures its `listName` key by type (ZCARD for a sorted
 * set, HLEN for a hash, LLEN for a list, SCARD for a set; 0 when absent), so
 * the two triggers read the pending-partitions sorted set and the backlog hash
 * directly. Key names come from QueueKeys, the one module that builds them.
 */
export class WorkerScaling extends Construct {
  readonly scaledObjectName: string;

  constructor(scope: Construct, id: string, props: WorkerScalingProps) {
    super(scope, id);
    const c = props.config;
    const s = c.scaling;
    const keys = new QueueKeys(c.app.queueNamespace);
    const authName = `${c.name}-redis`;
    this.scaledObjectName = props.target;

    // A private CA: KEDA takes TLS from the authentication (`tls: enable` and `ca`),
    // which it refuses together with the trigger's enableTLS. Both come from
    // ConfigMaps: the CA's, and a one-key one made here for the `enable`.
    const privateCa = c.redis.tls && c.redis.caConfigMap !== '';
    const tlsSwitch = `${c.name}-keda-redis-tls`;
    if (privateCa) {
      new k8s.KubeConfigMap(this, 'RedisTls', {
        metadata: metadata(c, 'worker', tlsSwitch),
        data: { tls: 'enable' },
      });
    }
    new TriggerAuthentication(this, 'RedisAuth', {
      metadata: metadata(c, 'worker', authName),
      spec: {
        secretTargetRef: [
          { parameter: 'address', name: c.redis.secretName, key: 'address' },
          { parameter: 'password', name: c.redis.secretName, key: 'password' },
        ],
        ...(privateCa
          ? {
              configMapTargetRef: [
                { parameter: 'tls', name: tlsSwitch, key: 'tls' },
                { parameter: 'ca', name: c.redis.caConfigMap, key: 'ca.crt' },
              ],
            }
          : {}),
      },
    });

    const redisMetadata = (listName: string): Record<string, string> => ({
      listName,
      // Per-trigger targets and activation are superseded by scalingModifiers;
      // KEDA still parses them, so they are set to neutral values.
      listLength: '1',
      activationListLength: '0',
      databaseIndex: '0',
      ...(c.redis.tls && !privateCa ? { enableTLS: 'true' } : {}),
    });
    const authenticationRef = {
      name: authName,
      kind: ScaledObjectSpecTriggersAuthenticationRefKind.TRIGGER_AUTHENTICATION,
    };
    const modifiers = scalingModifiersFor({
      concurrency: s.concurrency,
      backlogPerWorker: s.backlogPerWorker,
    });

    new ScaledObject(this, 'ScaledObject', {
      metadata: metadata(c, 'worker', this.scaledObjectName),
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: props.target },
        pollingInterval: s.pollingIntervalSeconds,
        cooldownPeriod: s.cooldownPeriodSeconds,
        minReplicaCount: s.minReplicas,
        maxReplicaCount: s.maxReplicas,
        fallback: {
          failureThreshold: s.fallback.failureThreshold,
          replicas: s.fallback.replicas,
          behavior: ScaledObjectSpecFallbackBehavior.STATIC,
        },
        advanced: {
          restoreToOriginalReplicaCount: false,
          horizontalPodAutoscalerConfig: {
            name: `${props.target}-keda`,
            behavior: {
              scaleUp: {
                stabilizationWindowSeconds: s.behavior.scaleUp.stabilizationWindowSeconds,
                selectPolicy: s.behavior.scaleUp.selectPolicy,
                policies: s.behavior.scaleUp.policies.map((p) => ({ ...p })),
              },
              scaleDown: {
                stabilizationWindowSeconds: s.behavior.scaleDown.stabilizationWindowSeconds,
                selectPolicy: s.behavior.scaleDown.selectPolicy,
                policies: s.behavior.scaleDown.policies.map((p) => ({ ...p })),
              },
            },
          },
          scalingModifiers: {
            formula: modifiers.formula,
            target: modifiers.target,
            activationTarget: modifiers.activationTarget,
            metricType: ScaledObjectSpecAdvancedScalingModifiersMetricType.AVERAGE_VALUE,
          },
        },
        triggers: [
          {
            type: 'redis',
            name: TRIGGER_NAMES.pending,
            metricType: 'AverageValue',
            metadata: redisMetadata(keys.pending),
            authenticationRef,
          },
          {
            type: 'redis',
            name: TRIGGER_NAMES.backlog,
            metricType: 'AverageValue',
            metadata: redisMetadata(keys.backlog),
            authenticationRef,
          },
        ],
      },
    });
  }
}
