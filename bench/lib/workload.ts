/**
 * Benchmark workloads: NEW trades with a chosen partition distribution,
 * deterministic for a seed. (AMEND/CANCEL chains are exercised by the tests;
 * here every trade is applied, so throughput means applied trades.)
 */
export type Distribution = 'uniform' | 'zipf' | 'unique';

export function workload(
  count: number,
  partitions: number,
  distribution: Distribution,
  seed = 1,
  idPrefix = 'B',
): Record<string, string>[] {
  let s = seed;
  const rand = () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x80000000;
  };
  // Zipf(s = 1.1) over `partitions` ranks: a few hot partitions carry most trades.
  let cdf: number[] = [];
  if (distribution === 'zipf') {
    let sum = 0;
    cdf = Array.from({ length: partitions }, (_, k) => (sum += 1 / Math.pow(k + 1, 1.1)));
    cdf = cdf.map((x) => x / sum);
  }
  const pick = (i: number): number => {
    if (distribution === 'unique') return i % partitions;
    if (distribution === 'uniform') return Math.floor(rand() * partitions);
    const u = rand();
    let lo = 0;
    let hi = partitions - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const out: Record<string, string>[] = [];
  for (let i = 0; i < count; i++) {
    const p = pick(i);
    out.push({
      tradeId: `${idPrefix}-${i}`,
      accountId: `ACC-${p % 97}`,
      bookId: `BOOK-${p % 7}`,
      securityId: `SEC-${p}`,
      side: i % 3 ? 'BUY' : 'SELL',
      quantity: `${1 + (i % 500)}`,
      price: `${100 + (i % 50)}.${i % 100}`,
      currency: 'USD',
      tradeTime: '2026-11-22T10:15:30.123+01:00',
      type: 'NEW',
    });
  }
  return out;
}
