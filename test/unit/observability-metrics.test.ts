/**
 * The metric catalogue and what is built on it: every metric is defined in
 * src/observability/metrics.ts with bounded labels; the PrometheusRule and the
 * Grafana dashboard that cdk8s synthesizes use only metrics defined there,
 * carry the deployment's numbers, scrape what the pods expose, and pass
 * `promtool check rules`.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { parseAllDocuments, stringify } from 'yaml';

import { renderEnvironment } from '../../cdk8s/charts';
import { ENVIRONMENTS, resolveConfig, type EnvironmentName } from '../../cdk8s/config';
import { METRICS_DOC_PATH, renderMetricsDoc } from '../../src/observability/metrics-doc';
import { describeMetrics, seriesNames } from '../../src/observability/metrics';
import { tool } from '../helpers/tools';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const ROOT = path.join(__dirname, '..', '..');
const metrics = describeMetrics();
const known = new Set(metrics.flatMap(seriesNames));
const promtool = tool('promtool', 'prometheus');

/** Every `tradefleet_*` identifier in a PromQL expression. */
const metricNamesIn = (expr: string): string[] =>
  [...expr.matchAll(/\btradefleet_[a-z0-9_]+/g)].map((m) => m[0]);

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

describe('the metric catalogue (src/observability/metrics.ts)', () => {
  it('every metric is named tradefleet_*, in snake_case, _total on counters only', () => {
    expect(metrics.length).toBeGreaterThan(20);
    for (const m of metrics) {
      expect({ name: m.name, ok: /^tradefleet_[a-z][a-z0-9_]*[a-z0-9]$/.test(m.name) }).toEqual({
        name: m.name,
        ok: true,
      });
      expect({ name: m.name, total: m.name.endsWith('_total') }).toEqual({
        name: m.name,
        total: m.type === 'counter',
      });
      expect(m.help.length).toBeGreaterThan(10);
    }
  });

  it('labels are bounded: none carries a partition, a trade or a URL', () => {
    const allowed = new Set([
      // tradefleet's own, each with a closed set of values
      'outcome',
      'reason_code',
      'kind',
      'cause',
      'reason',
      'result',
      'state',
      'action',
      'method',
      'route',
      'status_class',
      // prom-client's process metrics
      'version',
      'major',
      'minor',
      'patch',
      'space',
      'type',
    ]);
    for (const m of metrics)
      for (const l of m.labels)
        expect({ metric: m.name, label: l, ok: allowed.has(l) }).toEqual({
          metric: m.name,
          label: l,
          ok: true,
        });
  });

  it('is the only module that defines metrics', () => {
    const offenders = sourceFiles(path.join(ROOT, 'src'))
      .filter((f) => !f.endsWith(path.join('observability', 'metrics.ts')))
      .filter((f) =>
        /new (Counter|Gauge|Histogram|Summary)\(|collectDefaultMetrics\(/.test(fs.readFileSync(f, 'utf8')),
      )
      .map((f) => path.relative(ROOT, f));
    expect(offenders).toEqual([]);
  });

  it("the issue's metrics are there", () => {
    for (const name of [
      'tradefleet_producer_trades_total',
      'tradefleet_worker_trades_total',
      'tradefleet_worker_dead_letters_total',
      'tradefleet_worker_batch_size',
      'tradefleet_worker_batch_duration_seconds',
      'tradefleet_worker_end_to_end_latency_seconds',
      'tradefleet_queue_backlog',
      'tradefleet_queue_pending_partitions',
      'tradefleet_queue_oldest_waiting_age_seconds',
      'tradefleet_queue_halted_partitions',
      'tradefleet_worker_retries_total',
      'tradefleet_worker_circuit_breaker_state',
      'tradefleet_worker_lease_losses_total',
      'tradefleet_worker_active_drains',
    ]) {
      expect(metrics.map((m) => m.name)).toContain(name);
    }
  });

  it('docs/metrics.md is generated from it (npx tsx src/observability/metrics-doc.ts --write)', () => {
    expect(fs.readFileSync(METRICS_DOC_PATH, 'utf8')).toBe(renderMetricsDoc());
  });
});

describe.each(ENVIRONMENTS)('%s monitoring manifests', (env: EnvironmentName) => {
  const config = resolveConfig(env);
  const objects: Json[] = [];
  for (const [, text] of renderEnvironment(env)) {
    for (const doc of parseAllDocuments(text, { version: '1.1' })) {
      const o = doc.toJS() as Json | null;
      if (o) objects.push(o);
    }
  }
  const ofKind = (kind: string) => objects.filter((o) => o.kind === kind);
  const rule = ofKind('PrometheusRule');
  const rules: Json[] = rule.flatMap((r) => r.spec.groups.flatMap((g: Json) => g.rules));
  const grafana = objects.find(
    (o) => o.kind === 'ConfigMap' && o.metadata.name === 'tradefleet-grafana-dashboard',
  );
  const dashboard = JSON.parse(grafana?.data?.['tradefleet.json'] ?? '{}') as Json;
  const exprs: string[] = (dashboard.panels ?? []).flatMap((p: Json) => p.targets.map((t: Json) => t.expr));

  it('one PrometheusRule, in the deployment namespace, with the alerts the issue asks for', () => {
    expect(rule).toHaveLength(1);
    expect(rule[0]).toMatchObject({
      apiVersion: 'monitoring.coreos.com/v1',
      metadata: { name: 'tradefleet', namespace: config.namespace },
    });
    expect(rules.map((r) => r.alert).sort()).toEqual(
      [
        'TradefleetBacklogGrowingAtMaxReplicas',
        'TradefleetCircuitBreakerOpen',
        'TradefleetDeadLetters',
        'TradefleetNoWorkersForPendingWork',
        'TradefleetOldestWaitingOverSlo',
        'TradefleetPartitionsHalted',
        'TradefleetQueueSignalsUnreadable',
        'TradefleetScalingLimited',
      ].sort(),
    );
    const runbook = fs.readFileSync(path.join(ROOT, 'docs', 'observability.md'), 'utf8');
    for (const r of rules) {
      expect(r).toEqual({
        alert: expect.stringMatching(/^Tradefleet[A-Za-z]+$/),
        expr: expect.any(String),
        for: expect.stringMatching(/^\d+[smh]$/),
        labels: { severity: expect.stringMatching(/^(warning|critical)$/) },
        annotations: {
          summary: expect.any(String),
          description: expect.any(String),
          runbook: `docs/observability.md#${r.alert.toLowerCase()}`,
        },
      });
      // The runbook has a section per alert.
      expect(runbook).toContain(`### ${r.alert}`);
    }
  });

  it('every metric the rules use is defined in src/observability/metrics.ts, scoped to the namespace', () => {
    for (const r of rules) {
      const names = metricNamesIn(r.expr);
      expect(names.length).toBeGreaterThan(0);
      for (const n of names)
        expect({ alert: r.alert, metric: n, defined: known.has(n) }).toEqual({
          alert: r.alert,
          metric: n,
          defined: true,
        });
      for (const m of r.expr.matchAll(/\btradefleet_[a-z0-9_]+\{([^}]*)\}/g))
        expect(m[1]).toContain(`namespace="${config.namespace}"`);
    }
  });

  it('the alerts carry the deployment numbers: max replicas, C, T and the SLO', () => {
    const byName = Object.fromEntries(rules.map((r) => [r.alert, r.expr as string]));
    const max = config.scaling.maxReplicas;
    expect(byName.TradefleetBacklogGrowingAtMaxReplicas).toMatch(new RegExp(`>= ${max}$`));
    expect(byName.TradefleetScalingLimited).toContain(`/ ${config.scaling.concurrency} > ${max}`);
    expect(byName.TradefleetScalingLimited).toContain(`/ ${config.scaling.backlogPerWorker} > ${max}`);
    expect(byName.TradefleetOldestWaitingOverSlo).toMatch(
      new RegExp(`> ${config.monitoring.oldestWaitingSloSeconds}$`),
    );
    expect(byName.TradefleetCircuitBreakerOpen).toContain('state="open"');
  });

  (promtool.skipReason ? it.skip : it)('promtool check rules accepts the rules', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tf-rules-'));
    try {
      const file = path.join(dir, 'rules.yaml');
      fs.writeFileSync(file, stringify(rule[0]!.spec));
      const r = spawnSync(promtool.require(), ['check', 'rules', file], { encoding: 'utf8' });
      expect({ status: r.status, out: r.status === 0 ? '' : `${r.stdout}${r.stderr}` }).toEqual({
        status: 0,
        out: '',
      });
      expect(r.stdout).toContain(`${rules.length} rules found`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the Grafana dashboard ConfigMap: labelled for the sidecar, valid JSON, the panels the issue asks for, only defined metrics', () => {
    expect(grafana?.metadata.labels).toMatchObject(config.monitoring.grafanaDashboardLabels);
    expect(dashboard).toMatchObject({ uid: `tradefleet-${env}`, schemaVersion: expect.any(Number) });
    const titles = dashboard.panels.map((p: Json) => p.title as string);
    for (const t of [
      /Throughput/,
      /End-to-end latency/,
      /Backlog against worker replicas/,
      /Pending partitions/,
      /Retries/,
      /Dead letters/,
    ]) {
      expect(titles.some((x: string) => t.test(x))).toBe(true);
    }
    expect(
      exprs.filter((e) => /histogram_quantile\(0\.(5|95|99),.*end_to_end_latency_seconds_bucket/.test(e)),
    ).toHaveLength(3);
    for (const e of exprs) {
      for (const n of metricNamesIn(e))
        expect({ expr: e, metric: n, defined: known.has(n) }).toEqual({ expr: e, metric: n, defined: true });
    }
    for (const p of dashboard.panels)
      expect(p.datasource).toEqual({ type: 'prometheus', uid: '${datasource}' });
  });

  it('PodMonitors scrape the producer and worker pods on ports they expose', () => {
    const monitors = ofKind('PodMonitor');
    expect(monitors.map((m) => m.metadata.name).sort()).toEqual(['tradefleet-producer', 'tradefleet-worker']);
    for (const m of monitors) {
      const pod = objects.find(
        (o) =>
          o.kind === 'Deployment' &&
          Object.entries(m.spec.selector.matchLabels).every(
            ([k, v]) => o.spec.template.metadata.labels[k] === v,
          ),
      );
      expect(pod).toBeDefined();
      const ports = pod!.spec.template.spec.containers.flatMap((c: Json) =>
        (c.ports ?? []).map((p: Json) => p.name),
      );
      for (const ep of m.spec.podMetricsEndpoints) {
        expect(ports).toContain(ep.port);
        expect(ep.path).toBe('/metrics');
      }
    }
  });
});
