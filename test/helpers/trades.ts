/**
 * Generates a realistic trade stream for end-to-end tests: NEW trades over a
 * set of partitions, AMENDs and CANCELs of earlier NEW trades of the same
 * partition (a few of them of already-cancelled trades, which the domain
 * rejects and the worker dead-letters), and the oracle that says what every
 * position must be once the fleet has applied them in seq order.
 *
 * Options (all off by default, so that the default stream never changes):
 * a skewed (Zipf-like) choice of partition, exact repeats of earlier messages
 * (duplicates the producer must recognise), and AMEND/CANCEL chains (several
 * AMENDs of one trade, then its CANCEL, then now and then a late AMEND of the
 * cancelled trade, which the worker dead-letters).
 */
import {
  foldAll,
  partitionKey,
  validateTrade,
  type FoldRejection,
  type Position,
  type Trade,
} from '../../src/domain';

export interface Generated {
  /** In posting order; `trade` is the JSON body to post. */
  trades: Record<string, unknown>[];
}

export interface GenerateOptions {
  /**
   * How partitions are picked: `uniform` (the default), or Zipf-like with
   * exponent `s` (rank r is picked with probability proportional to 1/r^s, so
   * with s = 1 and 5,000 partitions the hottest gets about 11% of the trades).
   */
  readonly distribution?: 'uniform' | { readonly zipf: number };
  /** Fraction of messages that repeat an earlier message exactly (same tradeId, same payload). @default 0 */
  readonly duplicateRate?: number;
  /**
   * Fraction of AMENDs and CANCELs that continue the partition's current chain
   * (the NEW trade it amended last) instead of picking an earlier NEW at random. @default 0
   */
  readonly chainRate?: number;
}

/** Partition indexes by Zipf rank, hottest first, as a cumulative distribution. */
function zipfCdf(partitions: number, s: number): Float64Array {
  const cdf = new Float64Array(partitions);
  let total = 0;
  for (let r = 1; r <= partitions; r++) {
    total += 1 / r ** s;
    cdf[r - 1] = total;
  }
  for (let i = 0; i < partitions; i++) cdf[i]! /= total;
  return cdf;
}

function searchCdf(cdf: Float64Array, u: number): number {
  let lo = 0;
  let hi = cdf.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cdf[mid]! < u) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function generateTrades(
  count: number,
  partitions: number,
  seed = 7,
  idPrefix = 'E',
  options: GenerateOptions = {},
): Generated {
  const dist = options.distribution ?? 'uniform';
  const duplicateRate = options.duplicateRate ?? 0;
  const chainRate = options.chainRate ?? 0;
  // The default stream keeps its original generator (tests depend on it). Its
  // products exceed 2^53, so its low bits are poor; the options use mulberry32.
  const rand =
    dist === 'uniform' && duplicateRate === 0 && chainRate === 0 ? legacyRandom(seed) : mulberry32(seed);
  const cdf = dist === 'uniform' ? undefined : zipfCdf(partitions, dist.zipf);
  // Ranks map to partition indexes through a fixed shuffle, so that the hot
  // partitions are not all SEC-0, SEC-1, ... of one account.
  const rankToPartition = cdf ? shuffled(partitions, seed) : undefined;
  const pick = () =>
    cdf ? rankToPartition![searchCdf(cdf, rand(1_000_000_000) / 1_000_000_000)]! : rand(partitions);
  const chainOf: (string | undefined)[] = [];

  const news: string[][] = Array.from({ length: partitions }, () => []);
  const trades: Record<string, unknown>[] = [];
  for (let i = 0; i < count; i++) {
    if (duplicateRate > 0 && trades.length > 0 && rand(1_000_000) < duplicateRate * 1_000_000) {
      trades.push({ ...trades[rand(trades.length)]! });
      continue;
    }
    const p = pick();
    const ids = { accountId: `ACC-${p % 37}`, bookId: `BOOK_${p % 3}`, securityId: `SEC-${p}` };
    const tradeId = `${idPrefix}-${i}`;
    const tradeTime = new Date(Date.UTC(2026, 10, 22, 9, 0, 0) + i * 10).toISOString();
    const roll = rand(100);
    const earlier = news[p]!;
    const ref = () => {
      const chained = chainOf[p];
      if (chained !== undefined && chainRate > 0 && rand(1_000_000) < chainRate * 1_000_000) return chained;
      const id = earlier[rand(earlier.length)]!;
      if (chainRate > 0) chainOf[p] = id;
      return id;
    };
    if (roll < 12 && earlier.length > 0) {
      trades.push({
        tradeId,
        ...ids,
        type: 'AMEND',
        refTradeId: ref(),
        side: rand(2) ? 'BUY' : 'SELL',
        quantity: `${1 + rand(500)}`,
        price: `${10 + rand(90)}.${rand(100)}`,
        currency: 'USD',
        tradeTime,
      });
    } else if (roll < 20 && earlier.length > 0) {
      trades.push({ tradeId, ...ids, type: 'CANCEL', refTradeId: ref(), tradeTime });
    } else {
      earlier.push(tradeId);
      trades.push({
        tradeId,
        ...ids,
        type: 'NEW',
        side: rand(2) ? 'BUY' : 'SELL',
        quantity: `${1 + rand(1000)}.${rand(1000)}`,
        price: `${1 + rand(500)}.${rand(10000)}`,
        currency: 'USD',
        tradeTime,
      });
    }
  }
  return { trades };
}

/** The original generator of the default stream: `rand(n)` in [0, n). */
function legacyRandom(seed: number): (n: number) => number {
  let s = seed;
  return (n) => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s % n;
  };
}

/** mulberry32: a small 32-bit generator with good low bits; `rand(n)` in [0, n). */
function mulberry32(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

/** 0..n-1 in a fixed pseudo-random order (its own generator: the trade stream's is untouched). */
function shuffled(n: number, seed: number): number[] {
  const out = Array.from({ length: n }, (_, i) => i);
  const rand = mulberry32(seed ^ 0x5bd1e995);
  for (let i = n - 1; i > 0; i--) {
    const j = rand(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

export interface ExpectedPartition {
  position: Position;
  deadLetters: number;
  /** The messages the fold refused, which the worker must dead-letter (with the same codes). */
  rejections: readonly FoldRejection[];
}

/**
 * The expected position of every partition, folding its trades in the seq
 * order the producer assigned (`seqs` maps tradeId to seq).
 */
export function expectedPositions(
  trades: Record<string, unknown>[],
  seqs: Map<string, number>,
): Map<string, ExpectedPartition> {
  const byPk = new Map<string, { seen: Set<number>; list: { seq: number; trade: Trade }[] }>();
  for (const raw of trades) {
    const v = validateTrade(raw);
    if (!v.ok) throw new Error(`generator produced an invalid trade: ${JSON.stringify(v.errors)}`);
    const seq = seqs.get(v.trade.tradeId);
    if (seq === undefined) continue;
    const pk = partitionKey(v.trade.accountId, v.trade.bookId, v.trade.securityId);
    let entry = byPk.get(pk);
    if (!entry) byPk.set(pk, (entry = { seen: new Set(), list: [] }));
    if (!entry.seen.has(seq)) {
      entry.seen.add(seq);
      entry.list.push({ seq, trade: v.trade });
    }
  }
  const out = new Map<string, ExpectedPartition>();
  for (const [pk, { list }] of byPk) {
    list.sort((a, b) => a.seq - b.seq);
    const t = list[0]!.trade;
    const r = foldAll({ accountId: t.accountId, bookId: t.bookId, securityId: t.securityId }, list);
    out.set(pk, { position: r.position, deadLetters: r.rejections.length, rejections: r.rejections });
  }
  return out;
}
