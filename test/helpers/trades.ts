/**
 * Generates a realistic trade stream for end-to-end tests: NEW trades over a
 * set of partitions, AMENDs and CANCELs of earlier NEW trades of the same
 * partition (a few of them of already-cancelled trades, which the domain
 * rejects and the worker dead-letters), and the oracle that says what every
 * position must be once the fleet has applied them in seq order.
 */
import { foldAll, partitionKey, validateTrade, type Position, type Trade } from '../../src/domain';

export interface Generated {
  /** In posting order; `trade` is the JSON body to post. */
  trades: Record<string, unknown>[];
}

export function generateTrades(count: number, partitions: number, seed = 7, idPrefix = 'E'): Generated {
  let s = seed;
  const rand = (n: number) => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s % n;
  };
  const news: string[][] = Array.from({ length: partitions }, () => []);
  const trades: Record<string, unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const p = rand(partitions);
    const ids = { accountId: `ACC-${p % 37}`, bookId: `BOOK_${p % 3}`, securityId: `SEC-${p}` };
    const tradeId = `${idPrefix}-${i}`;
    const tradeTime = new Date(Date.UTC(2026, 10, 22, 9, 0, 0) + i * 10).toISOString();
    const roll = rand(100);
    const earlier = news[p]!;
    if (roll < 12 && earlier.length > 0) {
      trades.push({ tradeId, ...ids, type: 'AMEND', refTradeId: earlier[rand(earlier.length)], side: rand(2) ? 'BUY' : 'SELL', quantity: `${1 + rand(500)}`, price: `${10 + rand(90)}.${rand(100)}`, currency: 'USD', tradeTime });
    } else if (roll < 20 && earlier.length > 0) {
      trades.push({ tradeId, ...ids, type: 'CANCEL', refTradeId: earlier[rand(earlier.length)], tradeTime });
    } else {
      earlier.push(tradeId);
      trades.push({ tradeId, ...ids, type: 'NEW', side: rand(2) ? 'BUY' : 'SELL', quantity: `${1 + rand(1000)}.${rand(1000)}`, price: `${1 + rand(500)}.${rand(10000)}`, currency: 'USD', tradeTime });
    }
  }
  return { trades };
}

/**
 * The expected position of every partition, folding its trades in the seq
 * order the producer assigned (`seqs` maps tradeId to seq).
 */
export function expectedPositions(trades: Record<string, unknown>[], seqs: Map<string, number>): Map<string, { position: Position; deadLetters: number }> {
  const byPk = new Map<string, { seq: number; trade: Trade }[]>();
  for (const raw of trades) {
    const v = validateTrade(raw);
    if (!v.ok) throw new Error(`generator produced an invalid trade: ${JSON.stringify(v.errors)}`);
    const seq = seqs.get(v.trade.tradeId);
    if (seq === undefined) continue;
    const pk = partitionKey(v.trade.accountId, v.trade.bookId, v.trade.securityId);
    const list = byPk.get(pk) ?? [];
    if (!list.some((x) => x.seq === seq)) list.push({ seq, trade: v.trade });
    byPk.set(pk, list);
  }
  const out = new Map<string, { position: Position; deadLetters: number }>();
  for (const [pk, list] of byPk) {
    list.sort((a, b) => a.seq - b.seq);
    const t = list[0]!.trade;
    const r = foldAll({ accountId: t.accountId, bookId: t.bookId, securityId: t.securityId }, list);
    out.set(pk, { position: r.position, deadLetters: r.rejections.length });
  }
  return out;
}
