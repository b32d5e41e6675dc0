/**
 * Monitoring for the Prometheus operator and Grafana: PodMonitors that scrape
 * the producer (/metrics on its API port) and the workers (/metrics on
 * METRICS_PORT), a PrometheusRule with tradefleet's alerts, and a Grafana
 * dashboard in a ConfigMap labelled for Grafana's dashboard sidecar.
 *
 * The Prometheus operator's kinds are plain ApiObjects (no CRD import): their
 * shape is small and checked by test/unit/observability-metrics.test.ts, which
 * also checks that every metric the rules and the dashboard use is defined in
 * src/observability/metrics.ts and that `promtool check rules` accepts them.
 *
 * Queue gauges (backlog, pending partitions, ...) are exposed by every
 * producer and worker with the same queue-wide value: the expressions take
 * max(), never sum(). Worker replicas are count(tradefleet_worker_concurrency),
 * one series per scraped worker pod.
 */
import { ApiObject } from 'cdk8s';
import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import type { DeployConfig } from '../config';
import { labels, metadata, selectorLabels } from './common';

export interface MonitoringProps {
  readonly config: DeployConfig;
}

export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly labels: { readonly severity: 'warning' | 'critical' };
  readonly annotations: { readonly summary: string; readonly description: string; readonly runbook: string };
}

export interface RuleGroup {
  readonly name: string;
  readonly rules: readonly AlertRule[];
}

/** Where each alert's runbook section is (the anchor is the alert name in lower case). */
const RUNBOOK = 'docs/observability.md';

/** The alerting rules of one deployment (the `spec.groups` of its PrometheusRule). */
export function alertGroups(c: DeployConfig): RuleGroup[] {
  const sel = `namespace="${c.namespace}"`;
  const q = (metric: string, extra?: string) => `${metric}{${sel}${extra ? `,${extra}` : ''}}`;
  const C = c.scaling.concurrency;
  const T = c.scaling.backlogPerWorker;
  const max = c.scaling.maxReplicas;
  const slo = c.monitoring.oldestWaitingSloSeconds;
  const workers = `count(${q('tradefleet_worker_concurrency')})`;
  const rule = (
    alert: string,
    expr: string,
    forDuration: string,
    severity: 'warning' | 'critical',
    summary: string,
    description: string,
  ): AlertRule => ({
    alert,
    expr,
    for: forDuration,
    labels: { severity },
    annotations: { summary, description, runbook: `${RUNBOOK}#${alert.toLowerCase()}` },
  });
  return [
    {
      name: 'tradefleet.queue',
      rules: [
        rule(
          'TradefleetBacklogGrowingAtMaxReplicas',
          `max(deriv(${q('tradefleet_queue_backlog')}[10m])) > 0 and on() ${workers} >= ${max}`,
          '10m',
          'warning',
          'The backlog keeps growing with every allowed worker running',
          `The workers are at maxReplicaCount (${max}) and the backlog has grown for 10 minutes: ` +
            'the fleet applies fewer trades than are enqueued. Raise scaling.maxReplicas, ' +
            'or look for slow partitions and PostgreSQL contention.',
        ),
        rule(
          'TradefleetOldestWaitingOverSlo',
          `max(${q('tradefleet_queue_oldest_waiting_age_seconds')}) > ${slo}`,
          '5m',
          'critical',
          `A trade has waited more than ${slo} s`,
          'The oldest unapplied trade at the head of a pending partition is {{ $value | humanizeDuration }} old ' +
            `(SLO ${slo} s). See the dashboard's pending partitions, oldest first.`,
        ),
        rule(
          'TradefleetPartitionsHalted',
          `max(${q('tradefleet_queue_halted_partitions')}) > 0`,
          '1m',
          'warning',
          'Partitions are halted',
          '{{ $value }} partition(s) are halted and their trades wait for an operator: ' +
            'resume, retry or skip their head on the dashboard (halted partitions).',
        ),
        rule(
          'TradefleetScalingLimited',
          `max(${q('tradefleet_queue_pending_partitions')}) / ${C} > ${max} and on() max(${q('tradefleet_queue_backlog')}) / ${T} > ${max}`,
          '15m',
          'warning',
          'The queue asks for more workers than maxReplicaCount allows',
          `ceil(min(pending partitions / ${C}, backlog / ${T})) has been above maxReplicaCount (${max}) for 15 minutes: ` +
            'KEDA cannot scale further. Raise scaling.maxReplicas if PostgreSQL has the headroom.',
        ),
        rule(
          'TradefleetNoWorkersForPendingWork',
          `max(${q('tradefleet_queue_pending_partitions')}) > 0 unless on() ${workers} > 0`,
          '10m',
          'critical',
          'Trades are pending and no worker runs',
          'Partitions have trades waiting and no worker has been scraped for 10 minutes: check the KEDA ScaledObject and the worker pods.',
        ),
        rule(
          'TradefleetQueueSignalsUnreadable',
          `sum(rate(${q('tradefleet_queue_signal_read_errors_total')}[5m])) > 0`,
          '5m',
          'warning',
          'The queue signals cannot be read from Redis',
          'Scrapes fail to read the backlog and pending partitions from Redis: the queue gauges are stale, and KEDA reads the same keys.',
        ),
      ],
    },
    {
      name: 'tradefleet.workers',
      rules: [
        rule(
          'TradefleetDeadLetters',
          `sum by (reason_code) (increase(${q('tradefleet_worker_dead_letters_total')}[10m])) > 0`,
          '0m',
          'warning',
          'Trades are being dead-lettered ({{ $labels.reason_code }})',
          '{{ $value | humanize }} trade(s) dead-lettered with {{ $labels.reason_code }} in the last 10 minutes: ' +
            'see the dashboard (dead letters); replay them once the cause is fixed.',
        ),
        rule(
          'TradefleetCircuitBreakerOpen',
          `max(${q('tradefleet_worker_circuit_breaker_state', 'state="open"')}) > 0`,
          '2m',
          'critical',
          'Workers cannot reach PostgreSQL',
          'A worker circuit breaker has been open for 2 minutes: PostgreSQL is unreachable and the workers take no partitions.',
        ),
      ],
    },
  ];
}

interface Panel {
  readonly title: string;
  readonly unit: string;
  readonly targets: readonly { readonly expr: string; readonly legendFormat: string }[];
  readonly description?: string;
  readonly thresholds?: readonly { readonly value: number; readonly color: string }[];
}

/** The Grafana dashboard model (schemaVersion 39) of one deployment. */
export function grafanaDashboard(c: DeployConfig): Record<string, unknown> {
  const sel = `namespace="${c.namespace}"`;
  const q = (metric: string, extra?: string) => `${metric}{${sel}${extra ? `,${extra}` : ''}}`;
  const workers = `count(${q('tradefleet_worker_concurrency')})`;
  const quantile = (p: number) =>
    `histogram_quantile(${p}, sum by (le) (rate(${q('tradefleet_worker_end_to_end_latency_seconds_bucket')}[$__rate_interval])))`;
  const panels: Panel[] = [
    {
      title: 'Throughput (trades/s)',
      unit: 'ops',
      targets: [
        {
          expr: `sum(rate(${q('tradefleet_producer_trades_total', 'outcome="queued"')}[$__rate_interval]))`,
          legendFormat: 'enqueued',
        },
        {
          expr: `sum by (outcome) (rate(${q('tradefleet_worker_trades_total')}[$__rate_interval]))`,
          legendFormat: '{{outcome}}',
        },
        {
          expr: `sum by (outcome) (rate(${q('tradefleet_producer_trades_total', 'outcome!="queued"')}[$__rate_interval]))`,
          legendFormat: 'refused: {{outcome}}',
        },
      ],
    },
    {
      title: 'End-to-end latency, enqueue to commit',
      unit: 's',
      targets: [
        { expr: quantile(0.5), legendFormat: 'p50' },
        { expr: quantile(0.95), legendFormat: 'p95' },
        { expr: quantile(0.99), legendFormat: 'p99' },
      ],
    },
    {
      title: 'Backlog against worker replicas',
      unit: 'short',
      description: 'Unapplied trades, and the workers running (and allowed).',
      targets: [
        { expr: `max(${q('tradefleet_queue_backlog')})`, legendFormat: 'backlog (trades)' },
        { expr: workers, legendFormat: 'workers' },
        { expr: `vector(${c.scaling.maxReplicas})`, legendFormat: 'max replicas' },
      ],
    },
    {
      title: 'Pending partitions against worker capacity',
      unit: 'short',
      description: `Partitions with work, against workers x WORKER_CONCURRENCY (${c.scaling.concurrency}) and the drains in use.`,
      targets: [
        { expr: `max(${q('tradefleet_queue_pending_partitions')})`, legendFormat: 'pending partitions' },
        { expr: `sum(${q('tradefleet_worker_concurrency')})`, legendFormat: 'capacity (workers x C)' },
        { expr: `sum(${q('tradefleet_worker_active_drains')})`, legendFormat: 'drains in use' },
        { expr: workers, legendFormat: 'workers' },
      ],
    },
    {
      title: 'Oldest waiting trade',
      unit: 's',
      targets: [
        { expr: `max(${q('tradefleet_queue_oldest_waiting_age_seconds')})`, legendFormat: 'oldest waiting' },
      ],
      thresholds: [
        { value: 0, color: 'green' },
        { value: c.monitoring.oldestWaitingSloSeconds, color: 'red' },
      ],
    },
    {
      title: 'Retries by cause (per second)',
      unit: 'ops',
      targets: [
        {
          expr: `sum by (kind, cause) (rate(${q('tradefleet_worker_retries_total')}[$__rate_interval]))`,
          legendFormat: '{{kind}}: {{cause}}',
        },
        {
          expr: `sum by (reason) (rate(${q('tradefleet_worker_lease_losses_total')}[$__rate_interval]))`,
          legendFormat: 'lease lost: {{reason}}',
        },
        {
          expr: `sum(rate(${q('tradefleet_worker_leases_taken_over_total')}[$__rate_interval]))`,
          legendFormat: 'leases taken over (a worker died or froze)',
        },
      ],
    },
    {
      title: 'Dead letters and halts',
      unit: 'short',
      targets: [
        {
          expr: `sum by (reason_code) (increase(${q('tradefleet_worker_dead_letters_total')}[$__rate_interval]))`,
          legendFormat: 'dead-lettered: {{reason_code}}',
        },
        { expr: `max(${q('tradefleet_queue_halted_partitions')})`, legendFormat: 'halted partitions' },
      ],
    },
    {
      title: 'Batches: size and apply time (p95)',
      unit: 's',
      targets: [
        {
          expr: `histogram_quantile(0.95, sum by (le) (rate(${q('tradefleet_worker_batch_duration_seconds_bucket', 'result="committed"')}[$__rate_interval])))`,
          legendFormat: 'apply p95',
        },
        {
          expr: `sum(rate(${q('tradefleet_worker_batch_size_sum')}[$__rate_interval])) / sum(rate(${q('tradefleet_worker_batch_size_count')}[$__rate_interval]))`,
          legendFormat: 'mean trades per batch (no unit)',
        },
      ],
    },
    {
      title: 'PostgreSQL circuit breakers open',
      unit: 'short',
      targets: [
        {
          expr: `sum(${q('tradefleet_worker_circuit_breaker_state', 'state="open"')})`,
          legendFormat: 'workers with an open breaker',
        },
      ],
    },
  ];
  return {
    title: `tradefleet (${c.environment})`,
    uid: `tradefleet-${c.environment}`,
    tags: ['tradefleet'],
    timezone: 'utc',
    schemaVersion: 39,
    version: 1,
    editable: true,
    refresh: '30s',
    time: { from: 'now-6h', to: 'now' },
    templating: {
      list: [
        { name: 'datasource', type: 'datasource', query: 'prometheus', label: 'Prometheus', current: {} },
      ],
    },
    panels: panels.map((p, i) => ({
      id: i + 1,
      type: 'timeseries',
      title: p.title,
      ...(p.description ? { description: p.description } : {}),
      datasource: { type: 'prometheus', uid: '${datasource}' },
      gridPos: { x: (i % 2) * 12, y: Math.floor(i / 2) * 8, w: 12, h: 8 },
      fieldConfig: {
        defaults: {
          unit: p.unit,
          ...(p.thresholds
            ? {
                thresholds: {
                  mode: 'absolute',
                  steps: p.thresholds.map((t, j) => ({ color: t.color, value: j === 0 ? null : t.value })),
                },
                custom: { thresholdsStyle: { mode: 'line' } },
              }
            : {}),
        },
        overrides: [],
      },
      options: { legend: { displayMode: 'list', placement: 'bottom' }, tooltip: { mode: 'multi' } },
      targets: p.targets.map((t, j) => ({
        refId: String.fromCharCode(65 + j),
        expr: t.expr,
        legendFormat: t.legendFormat,
      })),
    })),
  };
}

export class Monitoring extends Construct {
  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const c = props.config;
    const m = c.monitoring;

    new ApiObject(this, 'Rules', {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PrometheusRule',
      metadata: {
        name: c.name,
        namespace: c.namespace,
        labels: { ...labels(c, 'monitoring'), ...m.ruleLabels },
      },
      spec: { groups: alertGroups(c) },
    });

    for (const [component, port] of [
      ['producer', 'http'],
      ['worker', 'metrics'],
    ] as const) {
      new ApiObject(this, `PodMonitor-${component}`, {
        apiVersion: 'monitoring.coreos.com/v1',
        kind: 'PodMonitor',
        metadata: {
          name: `${c.name}-${component}`,
          namespace: c.namespace,
          labels: { ...labels(c, 'monitoring'), ...m.ruleLabels },
        },
        spec: {
          selector: { matchLabels: selectorLabels(c, component) },
          podMetricsEndpoints: [{ port, path: '/metrics', interval: m.scrapeInterval }],
        },
      });
    }

    new k8s.KubeConfigMap(this, 'GrafanaDashboard', {
      metadata: {
        ...metadata(c, 'monitoring', `${c.name}-grafana-dashboard`),
        labels: { ...labels(c, 'monitoring'), ...m.grafanaDashboardLabels },
      },
      data: { 'tradefleet.json': `${JSON.stringify(grafanaDashboard(c), null, 2)}\n` },
    });
  }
}
