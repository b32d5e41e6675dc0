/**
 * The chaos run (`npm run chaos`): producer + 4 workers through the CLI, its
 * own Redis (AOF, appendfsync always) and PostgreSQL, 100,000 trades over
 * 5,000 partitions (Zipf-like), with worker SIGKILLs, a SIGSTOP past the
 * lease, a cut Redis connection, a Redis crash and a PostgreSQL crash during
 * posting; then every invariant checked from the database, the API and the
 * worker logs (see test/chaos/chaos-run.ts). Prints a summary and writes
 * bench/results/chaos.{json,md}; exits 1 when a check fails.
 *
 * Scale it with CHAOS_TRADES, CHAOS_PARTITIONS, CHAOS_POST_SECONDS,
 * CHAOS_WORKERS, CHAOS_KILL_EVERY_MS; CHAOS_OUT=name writes
 * bench/results/<name>.{json,md} instead.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { FULL_RUN, renderSummary, runChaos, type ChaosOptions } from '../test/chaos/chaos-run';

const num = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);

async function main(): Promise<number> {
  const workDir = mkdtempSync(join(tmpdir(), 'tf-chaos-'));
  const opts: ChaosOptions = {
    ...FULL_RUN,
    trades: num('CHAOS_TRADES', FULL_RUN.trades),
    partitions: num('CHAOS_PARTITIONS', FULL_RUN.partitions),
    postSeconds: num('CHAOS_POST_SECONDS', FULL_RUN.postSeconds),
    workers: num('CHAOS_WORKERS', FULL_RUN.workers),
    killEveryMs: num('CHAOS_KILL_EVERY_MS', FULL_RUN.killEveryMs),
    maxBacklog: num('CHAOS_MAX_BACKLOG', FULL_RUN.maxBacklog),
    seed: num('CHAOS_SEED', FULL_RUN.seed),
    workDir,
    log: (line) => console.log(`[chaos] ${line}`),
  };
  console.log(`[chaos] ${cpus().length} CPUs, ${Math.round(totalmem() / 2 ** 30)} GiB; logs in ${workDir}`);
  const report = await runChaos(opts);
  const summary = renderSummary(report);
  console.log(`\n${summary}`);
  const name = process.env.CHAOS_OUT ?? 'chaos';
  const dir = join(__dirname, 'results');
  mkdirSync(dir, { recursive: true });
  const machine = `${cpus().length} x ${cpus()[0]?.model ?? 'CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
  writeFileSync(
    join(dir, `${name}.json`),
    JSON.stringify({ machine, ...report, options: { ...report.options, workDir: undefined } }, null, 2) +
      '\n',
  );
  writeFileSync(
    join(dir, `${name}.md`),
    `# Chaos run\n\n\`npm run chaos\` (bench/chaos.ts) on ${machine}.\n\n${summary}`,
  );
  console.log(`[chaos] wrote bench/results/${name}.{json,md}`);
  if (report.problems.length === 0) rmSync(workDir, { recursive: true, force: true });
  else console.log(`[chaos] FAILED; worker and producer logs kept in ${workDir}`);
  return report.problems.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(2);
  },
);
