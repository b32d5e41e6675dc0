import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');

/** Children started by a test file; stopAll() is called in afterAll so none outlives its test. */
const children = new Set<ChildProcess>();

/** Runs a TypeScript file of this repo in a child Node process (through tsx). */
export function spawnTs(
  file: string,
  env: Record<string, string>,
  opts: { inherit?: boolean } = {},
): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, file)], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: opts.inherit ? 'inherit' : ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  child.on('exit', (code, signal) => {
    children.delete(child);
    if (code && code !== 0 && !signal && process.env.TF_TEST_VERBOSE)
      console.error(`child ${file} exited ${code}: ${stderr}`);
  });
  (child as ChildProcess & { stderrTail: () => string }).stderrTail = () => stderr;
  children.add(child);
  return child;
}

export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** SIGTERM every live child, SIGKILL what is left after `graceMs`. */
export async function stopAll(graceMs = 5000): Promise<void> {
  const live = [...children];
  for (const c of live) {
    c.kill('SIGCONT');
    c.kill('SIGTERM');
  }
  const timer = setTimeout(() => live.forEach((c) => c.kill('SIGKILL')), graceMs);
  await Promise.all(live.map(exited));
  clearTimeout(timer);
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Runs the `tradefleet` command (bin/tradefleet.js) with arguments, as a user would. */
export function spawnCli(args: string[], env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'tradefleet.js'), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // The last ~2 MB as a list of chunks: re-slicing one 2 MB string on every chunk
  // costs a copy per chunk, which a chatty worker (LOG_LEVEL=info) turns into gigabytes.
  const LIMIT = 2_000_000;
  let chunks: string[] = [];
  let size = 0;
  const keep = (d: Buffer) => {
    const text = d.toString();
    chunks.push(text);
    size += text.length;
    if (size > 2 * LIMIT) {
      const joined = chunks.join('').slice(-LIMIT);
      chunks = [joined];
      size = joined.length;
    }
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  (child as ChildProcess & { output: () => string }).output = () => {
    const joined = chunks.join('').slice(-LIMIT);
    chunks = [joined];
    size = joined.length;
    return joined;
  };
  child.on('exit', () => children.delete(child));
  children.add(child);
  return child;
}

/** The last 2 MB a spawnCli child printed. */
export function outputOf(child: ChildProcess): string {
  return (child as ChildProcess & { output?: () => string }).output?.() ?? '';
}

/** Resolves with the exit code (or the signal name) of a child. */
export function exitCode(child: ChildProcess): Promise<number | string> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  if (child.signalCode !== null) return Promise.resolve(child.signalCode);
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
}
