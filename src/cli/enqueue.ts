import { createReadStream, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { intOption, parse, UsageError } from './args';

const USAGE = `Usage: tradefleet enqueue [FILE|-] [--url URL] [--batch N] [--token TOKEN]
  Posts NDJSON trades (one JSON object per line) to the producer API in batches.
  FILE defaults to standard input. URL defaults to http://127.0.0.1:$PORT (8080).
  TOKEN defaults to $TRADEFLEET_TOKEN (bearer token, when the producer requires one).`;

interface Summary {
  lines: number;
  /** Bytes read so far and the input's size (0 for standard input: no percentage). */
  bytes: number;
  size: number;
  queued: number;
  duplicate: number;
  conflict: number;
  invalid: number;
  failedRequests: number;
  examples: string[];
}

export async function enqueue(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    { url: { type: 'string' }, batch: { type: 'string' }, token: { type: 'string' } },
    USAGE,
  );
  if (positionals.length > 1)
    throw new UsageError(`enqueue takes at most one FILE; got ${positionals.join(' ')}\n\n${USAGE}`);
  const file = positionals[0] ?? '-';
  const url = (values.url ?? `http://127.0.0.1:${process.env.PORT ?? 8080}`).replace(/\/$/, '');
  const batchSize = intOption('batch', values.batch, 500, 1, 100_000);
  const token = values.token ?? process.env.TRADEFLEET_TOKEN;
  const input = file === '-' ? process.stdin : createReadStream(file);
  const lines = createInterface({ input, crlfDelay: Infinity });
  const s: Summary = {
    bytes: 0,
    size: file === '-' ? 0 : statSync(file).size,
    lines: 0,
    queued: 0,
    duplicate: 0,
    conflict: 0,
    invalid: 0,
    failedRequests: 0,
    examples: [],
  };
  const started = Date.now();
  const progress = makeProgress(s, started);
  let batch: { line: number; trade: unknown }[] = [];

  const flush = async () => {
    if (batch.length === 0) return;
    const sent = batch;
    batch = [];
    await postBatch(url, token, sent, s);
    progress();
  };

  for await (const raw of lines) {
    s.lines++;
    s.bytes += Buffer.byteLength(raw) + 1;
    const text = raw.trim();
    if (!text) continue;
    try {
      batch.push({ line: s.lines, trade: JSON.parse(text) });
    } catch (e) {
      s.invalid++;
      note(s, `line ${s.lines}: not JSON (${(e as Error).message})`);
    }
    if (batch.length >= batchSize) await flush();
  }
  await flush();
  progress(true);
  const secs = (Date.now() - started) / 1000;
  console.error(
    `\n${s.queued} queued, ${s.duplicate} duplicate, ${s.conflict} conflict, ${s.invalid} invalid, ` +
      `${s.failedRequests} failed requests; ${s.lines} lines in ${secs.toFixed(1)} s`,
  );
  for (const e of s.examples) console.error(`  ${e}`);
  return s.invalid + s.conflict + s.failedRequests > 0 ? 1 : 0;
}

function note(s: Summary, line: string) {
  if (s.examples.length < 10) s.examples.push(line);
}

async function postBatch(
  url: string,
  token: string | undefined,
  items: { line: number; trade: unknown }[],
  s: Summary,
) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  for (let attempt = 1; ; attempt++) {
    let res: Response;
    try {
      res = await fetch(`${url}/v1/trades/batch`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ trades: items.map((i) => i.trade) }),
      });
    } catch (e) {
      if (attempt < 5) {
        await sleep(200 * 2 ** attempt);
        continue;
      }
      s.failedRequests++;
      note(s, `lines ${items[0]!.line}-${items[items.length - 1]!.line}: ${(e as Error).message}`);
      return;
    }
    // Backpressure: wait as told, then send the same batch again (enqueue is idempotent per tradeId).
    if ((res.status === 429 || res.status === 503) && attempt < 30) {
      await sleep(Math.min(10, Number(res.headers.get('retry-after') ?? 1)) * 1000);
      continue;
    }
    const body = (await res.json().catch(() => ({}))) as {
      results?: { status: string; error?: { message?: string } }[];
      error?: { message?: string };
    };
    if (!Array.isArray(body.results)) {
      s.failedRequests++;
      note(
        s,
        `lines ${items[0]!.line}-${items[items.length - 1]!.line}: HTTP ${res.status} ${body.error?.message ?? ''}`,
      );
      return;
    }
    body.results.forEach((r, i) => {
      if (r.status === 'queued') s.queued++;
      else if (r.status === 'duplicate') s.duplicate++;
      else if (r.status === 'conflict') {
        s.conflict++;
        note(s, `line ${items[i]!.line}: conflict with an earlier trade of the same tradeId`);
      } else {
        s.invalid++;
        note(s, `line ${items[i]!.line}: ${r.error?.message ?? r.status}`);
      }
    });
    return;
  }
}

function makeProgress(s: Summary, started: number) {
  const tty = process.stderr.isTTY;
  let lastPrint = 0;
  return (final = false) => {
    const now = Date.now();
    if (!final && now - lastPrint < (tty ? 100 : 2000)) return;
    lastPrint = now;
    const rate = Math.round((s.queued + s.duplicate) / Math.max(0.001, (now - started) / 1000));
    const done = s.queued + s.duplicate + s.conflict + s.invalid;
    const share = s.size > 0 ? Math.min(1, s.bytes / s.size) : undefined;
    const bar =
      share === undefined
        ? ''
        : `[${'#'.repeat(Math.round(share * 30)).padEnd(30, '.')}] ${Math.round(share * 100)}% `;
    const line = `${bar}${done} sent, ${s.queued} queued, ${rate}/s`;
    if (tty) process.stderr.write(`\r${line}`);
    else console.error(line);
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
