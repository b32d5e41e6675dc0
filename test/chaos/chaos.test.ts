/**
 * The chaos run inside `npm test`, scaled down (10,000 trade messages over 500
 * partitions, about a minute): producer + 4 workers through the CLI against
 * their own Redis (AOF, appendfsync always) and PostgreSQL, with worker
 * SIGKILLs every few seconds, a SIGSTOP past the lease, a cut Redis
 * connection, a Redis crash and a PostgreSQL crash while trades are posted.
 * Then nothing may be lost, duplicated or reordered, every position must
 * equal the fold (digest included), every dead letter must carry a reason and
 * be one the fold refuses, and no two workers' commits may overlap on a
 * partition. `npm run chaos` (bench/chaos.ts) is the full-size run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FULL_RUN, renderSummary, runChaos } from './chaos-run';

jest.setTimeout(300_000);

test('chaos: 10,000 trades through producer + 4 workers under SIGKILL, SIGSTOP, a cut connection, Redis and PostgreSQL crashes: nothing lost, duplicated or reordered', async () => {
  const workDir = mkdtempSync(join(tmpdir(), 'tf-chaos-test-'));
  const progress: string[] = [];
  const report = await runChaos({
    ...FULL_RUN,
    trades: 10_000,
    partitions: 500,
    postSeconds: 40,
    postBatch: 100,
    singlesEvery: 20,
    killEveryMs: 4000,
    maxBacklog: 600,
    drainTimeoutMs: 120_000,
    apiSamples: 40,
    workDir,
    log: (line) => progress.push(line),
  });
  const summary = renderSummary(report);
  if (process.env.TF_TEST_VERBOSE) console.log(`${progress.join('\n')}\n\n${summary}`);
  if (report.problems.length > 0) {
    console.error(`${progress.join('\n')}\n\n${summary}\nworker and producer logs: ${workDir}`);
  } else {
    rmSync(workDir, { recursive: true, force: true });
  }
  expect(report.problems).toEqual([]);
  const c = report.checks;
  expect({
    lost: c.lost,
    duplicated: c.duplicated,
    reordered: c.reordered,
    unexpected: c.unexpected,
  }).toEqual({
    lost: 0,
    duplicated: 0,
    reordered: 0,
    unexpected: 0,
  });
  expect({
    positions: c.positionMismatches,
    deadLetters: c.deadLetterMismatches,
    noReason: c.deadLettersWithoutReason,
    api: c.apiMismatches,
  }).toEqual({
    positions: 0,
    deadLetters: 0,
    noReason: 0,
    api: 0,
  });
  expect({ overlaps: c.logOverlaps, epochRegressions: c.logEpochRegressions }).toEqual({
    overlaps: 0,
    epochRegressions: 0,
  });
  // The checker saw real work and real faults.
  expect(report.trades.accepted).toBe(report.trades.unique);
  expect(report.trades.applied + report.trades.deadLettered).toBe(report.trades.unique);
  expect(report.trades.deadLettered).toBeGreaterThan(0);
  expect(c.logBatches).toBeGreaterThan(100);
  expect(c.apiChecked).toBeGreaterThan(40);
  expect(report.faultCounts['worker-sigkill']).toBeGreaterThanOrEqual(3);
  for (const kind of ['worker-sigstop', 'redis-conn-cut', 'redis-restart', 'postgres-restart'] as const) {
    expect({ kind, injected: report.faultCounts[kind] }).toEqual({ kind, injected: 1 });
  }
  expect(report.faults.find((f) => f.kind === 'redis-conn-cut')?.detail).toMatch(/CLIENT KILL ID of [1-9]/);
  expect(report.posting.byStatus['503'] ?? 0).toBeGreaterThan(0); // posting went on through the Redis crash
});
