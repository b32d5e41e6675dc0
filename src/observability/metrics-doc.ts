/**
 * docs/metrics.md from the metric definitions (src/observability/metrics.ts).
 *   npx tsx src/observability/metrics-doc.ts           print it
 *   npx tsx src/observability/metrics-doc.ts --write   rewrite docs/metrics.md
 *   npx tsx src/observability/metrics-doc.ts --check   exit 1 when docs/metrics.md is stale
 * test/unit/observability-metrics.test.ts fails when the file is stale.
 */
import fs from 'node:fs';
import path from 'node:path';

import { describeMetrics, METRIC_PREFIX } from './metrics';

export const METRICS_DOC_PATH = path.join(__dirname, '..', '..', 'docs', 'metrics.md');

export function renderMetricsDoc(): string {
  const all = describeMetrics();
  const own = all.filter((m) => !/^tradefleet_(producer|worker)_(process|nodejs)_/.test(m.name));
  const processMetrics = all.filter((m) => !own.includes(m));
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  const lines = [
    '# Metrics',
    '',
    '<!-- Generated from src/observability/metrics.ts by `npx tsx src/observability/metrics-doc.ts --write`; do not edit. -->',
    '',
    `Every metric is defined in \`src/observability/metrics.ts\` and named \`${METRIC_PREFIX}*\`. The producer serves`,
    'them at `GET /metrics` on its API port, each worker at `GET /metrics` on `METRICS_PORT` (9464; 0 turns',
    'it off). Labels have closed sets of values: no series per partition or per trade (the dashboard',
    'shows the hottest partitions instead). The `tradefleet_queue_*` gauges are read from Redis when',
    'scraped (cached 2 s) and are the same queue-wide numbers in every process: aggregate them with',
    '`max()`, not `sum()`. Alerts and the Grafana dashboard built on them: `cdk8s/constructs/monitoring.ts`',
    'and [observability.md](observability.md).',
    '',
    '| Metric | Type | Labels | Exposed by | Meaning |',
    '| ------ | ---- | ------ | ---------- | ------- |',
    ...own.map(
      (m) =>
        `| \`${m.name}\` | ${m.type} | ${m.labels.map((l) => `\`${l}\``).join(', ')} | ${m.processes.join(', ')} | ${cell(m.help)} |`,
    ),
    '',
    'Process metrics (Node.js runtime, from prom-client), per process:',
    '',
    ...processMetrics.map((m) => `- \`${m.name}\` (${m.type})`),
    '',
  ];
  return lines.join('\n');
}

function main(mode: string | undefined): number {
  const doc = renderMetricsDoc();
  if (mode === '--write') {
    fs.writeFileSync(METRICS_DOC_PATH, doc);
    console.log(`updated ${METRICS_DOC_PATH}`);
    return 0;
  }
  if (mode === '--check') {
    const current = fs.existsSync(METRICS_DOC_PATH) ? fs.readFileSync(METRICS_DOC_PATH, 'utf8') : '';
    if (current !== doc) {
      console.error('docs/metrics.md is stale: run `npx tsx src/observability/metrics-doc.ts --write`');
      return 1;
    }
    return 0;
  }
  process.stdout.write(doc);
  return 0;
}

if (require.main === module) process.exitCode = main(process.argv[2]);
