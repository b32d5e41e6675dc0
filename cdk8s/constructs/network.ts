/**
 * NetworkPolicies: every tradefleet pod gets exactly the traffic it needs.
 * - workers: ingress only from Prometheus's namespace on the metrics port;
 *   egress to Redis, PostgreSQL and DNS only;
 * - producer: ingress on its port (from the allowed namespaces and
 *   Prometheus's, when restricted); egress to Redis, PostgreSQL and DNS;
 * - migrate: no ingress; egress to PostgreSQL and DNS;
 * - dev Redis: ingress from producer, workers and KEDA's operator (it reads
 *   the scaling signals); dev PostgreSQL: ingress from producer, workers, migrate.
 */
import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-27';
import type { DeployConfig } from '../config';
import { metadata, selectorLabels, type Component } from './common';

const tcp = (port: number): k8s.NetworkPolicyPort => ({
  protocol: 'TCP',
  port: k8s.IntOrString.fromNumber(port),
});

function dnsEgress(): k8s.NetworkPolicyEgressRule {
  return {
    to: [
      {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } },
        podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
      },
    ],
    ports: [
      { protocol: 'UDP', port: k8s.IntOrString.fromNumber(53) },
      { protocol: 'TCP', port: k8s.IntOrString.fromNumber(53) },
    ],
  };
}

function storeEgress(c: DeployConfig, store: 'redis' | 'postgres'): k8s.NetworkPolicyEgressRule {
  const d = c[store];
  if (d.mode === 'in-cluster') {
    return {
      to: [{ podSelector: { matchLabels: selectorLabels(c, store) } }],
      ports: [tcp(store === 'redis' ? 6379 : 5432)],
    };
  }
  return { to: d.egressCidrs.map((cidr) => ({ ipBlock: { cidr } })), ports: [tcp(d.port)] };
}

function policy(
  scope: Construct,
  id: string,
  c: DeployConfig,
  component: Component,
  rules: { ingress: k8s.NetworkPolicyIngressRule[]; egress: k8s.NetworkPolicyEgressRule[] },
): void {
  new k8s.KubeNetworkPolicy(scope, id, {
    metadata: metadata(c, component, `${c.name}-${component}`),
    spec: {
      podSelector: { matchLabels: selectorLabels(c, component) },
      // Both types listed: an empty rule list then denies everything in that direction.
      policyTypes: ['Ingress', 'Egress'],
      ingress: rules.ingress,
      egress: rules.egress,
    },
  });
}

export interface NetworkPoliciesProps {
  readonly config: DeployConfig;
}

export class NetworkPolicies extends Construct {
  constructor(scope: Construct, id: string, props: NetworkPoliciesProps) {
    super(scope, id);
    const c = props.config;
    const from = (component: Component): k8s.NetworkPolicyPeer => ({
      podSelector: { matchLabels: selectorLabels(c, component) },
    });

    const prometheus: k8s.NetworkPolicyPeer = {
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': c.monitoring.prometheusNamespace } },
    };
    policy(this, 'Worker', c, 'worker', {
      ingress: [{ from: [prometheus], ports: [tcp(c.monitoring.metricsPort)] }],
      egress: [dnsEgress(), storeEgress(c, 'redis'), storeEgress(c, 'postgres')],
    });

    const producerSources: k8s.NetworkPolicyPeer[] | undefined = c.producer.ingressFromNamespaces.length
      ? [
          ...c.producer.ingressFromNamespaces.map((ns) => ({
            namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns } },
          })),
          // Prometheus scrapes /metrics on the API port.
          prometheus,
        ]
      : undefined;
    policy(this, 'Producer', c, 'producer', {
      ingress: [{ ...(producerSources ? { from: producerSources } : {}), ports: [tcp(c.producer.port)] }],
      egress: [dnsEgress(), storeEgress(c, 'redis'), storeEgress(c, 'postgres')],
    });

    policy(this, 'Migrate', c, 'migrate', { ingress: [], egress: [dnsEgress(), storeEgress(c, 'postgres')] });

    if (c.redis.mode === 'in-cluster') {
      policy(this, 'Redis', c, 'redis', {
        ingress: [
          {
            from: [
              from('producer'),
              from('worker'),
              // KEDA's operator polls the pending and backlog keys.
              {
                namespaceSelector: {
                  matchLabels: { 'kubernetes.io/metadata.name': c.scaling.kedaNamespace },
                },
              },
            ],
            ports: [tcp(6379)],
          },
        ],
        egress: [],
      });
    }
    if (c.postgres.mode === 'in-cluster') {
      policy(this, 'Postgres', c, 'postgres', {
        ingress: [{ from: [from('producer'), from('worker'), from('migrate')], ports: [tcp(5432)] }],
        egress: [],
      });
    }
  }
}
