import { existsSync, readFileSync } from 'node:fs';

export interface LogLine {
  ev: string;
  pid: number;
  pk: string;
  seqs?: number[];
  first?: number;
  last?: number;
  epoch?: number;
  why?: string;
  t: number;
}

export function readLog(file: string): LogLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LogLine);
}

/**
 * Checks the invariants a worker log must show. Returns a list of violations
 * (empty when all hold) so a test can print them all at once:
 * - every seq 1..expected[pk] of every partition acked exactly once, in order
 *   (a process in `killed` may have taken its last ack's log line with it);
 * - handler calls of one partition never overlap in time (across processes);
 * - each handler call sees consecutive seqs starting right after the last ack
 *   (a call may repeat an un-acked batch after a crash, never skip one).
 */
export function checkLog(
  lines: LogLine[],
  expected: Map<string, number>,
  killed = new Set<number>(),
): string[] {
  const problems: string[] = [];
  const acked = new Map<string, number>();
  // A killed process can ack in Redis and die before logging the ack. Such a
  // gap is accepted only when that process started exactly the missing batch.
  const startedByKilled = new Set(
    lines
      .filter((x) => x.ev === 'start' && killed.has(x.pid))
      .map((x) => `${x.pk}/${x.seqs![0]}/${x.seqs![x.seqs!.length - 1]}`),
  );
  for (const l of lines.filter((x) => x.ev === 'acked')) {
    const last = acked.get(l.pk) ?? 0;
    const lostLogLine = startedByKilled.has(`${l.pk}/${last + 1}/${l.first! - 1}`);
    if (l.first !== last + 1 && !lostLogLine)
      problems.push(`${l.pk}: ack of ${l.first}..${l.last} after ${last}`);
    acked.set(l.pk, l.last!);
  }
  for (const [pk, n] of expected) {
    const last = acked.get(pk) ?? 0;
    // The last batch of a partition may be the one whose ack log line died with its process.
    if (last !== n && !startedByKilled.has(`${pk}/${last + 1}/${n}`))
      problems.push(`${pk}: acked up to ${last}, expected ${n}`);
  }
  for (const pk of acked.keys()) if (!expected.has(pk)) problems.push(`${pk}: acked but never enqueued`);

  // Only calls whose batch was then acked count for exclusivity: a call cut
  // short by a kill, or fenced after a pause (its ack refused), changed nothing
  // in Redis, and PostgreSQL fencing is what neutralizes its writes.
  const ackedBy = new Set(
    lines.filter((x) => x.ev === 'acked').map((x) => `${x.pid}/${x.pk}/${x.first}/${x.last}`),
  );
  const byPk = new Map<string, { pid: number; start: number; end: number; seqs: number[] }[]>();
  const open = new Map<string, { pid: number; start: number; seqs: number[] }>();
  for (const l of lines) {
    const key = `${l.pid}/${l.pk}`;
    if (l.ev === 'start') open.set(key, { pid: l.pid, start: l.t, seqs: l.seqs! });
    if (l.ev === 'end') {
      const s = open.get(key);
      if (!s) continue;
      open.delete(key);
      if (!ackedBy.has(`${key}/${s.seqs[0]}/${s.seqs[s.seqs.length - 1]}`)) continue;
      const list = byPk.get(l.pk) ?? [];
      list.push({ ...s, end: l.t });
      byPk.set(l.pk, list);
    }
  }
  for (const [pk, calls] of byPk) {
    calls.sort((a, b) => a.start - b.start);
    for (let i = 1; i < calls.length; i++) {
      if (calls[i]!.start < calls[i - 1]!.end) {
        problems.push(
          `${pk}: calls overlap (pid ${calls[i - 1]!.pid} until ${calls[i - 1]!.end}, pid ${calls[i]!.pid} from ${calls[i]!.start})`,
        );
      }
    }
    for (const c of calls) {
      for (let j = 1; j < c.seqs.length; j++) {
        if (c.seqs[j] !== c.seqs[j - 1]! + 1)
          problems.push(`${pk}: non-consecutive batch ${c.seqs.join(',')}`);
      }
    }
  }
  return problems.slice(0, 50);
}
