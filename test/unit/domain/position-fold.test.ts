import { createHash } from 'node:crypto';

import {
  type EffectiveTrade,
  emptyPosition,
  FoldInvariantError,
  foldAll,
  type FoldResult,
  foldTrade,
  nextDigest,
  type Position,
  type SequencedTrade,
  skipSeq,
} from '../../../src/domain/position';
import type { AmendTrade, CancelTrade, NewTrade, Side, Trade } from '../../../src/domain/trade';

const IDS = { accountId: 'ACC_1', bookId: 'BOOK', securityId: 'SEC' } as const;
const TIME = '2026-11-22T10:15:30Z';

function newTrade(tradeId: string, side: Side, quantity: string, price: string, currency = 'USD'): NewTrade {
  return { tradeId, type: 'NEW', ...IDS, side, quantity, price, currency, tradeTime: TIME };
}

function amend(
  tradeId: string,
  refTradeId: string,
  side: Side,
  quantity: string,
  price: string,
  currency = 'USD',
): AmendTrade {
  return { tradeId, type: 'AMEND', refTradeId, ...IDS, side, quantity, price, currency, tradeTime: TIME };
}

function cancel(tradeId: string, refTradeId: string, extra: Partial<CancelTrade> = {}): CancelTrade {
  return { tradeId, type: 'CANCEL', refTradeId, ...IDS, tradeTime: TIME, ...extra };
}

function sequenced(...trades: Trade[]): SequencedTrade[] {
  return trades.map((trade, i) => ({ seq: i + 1, trade }));
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

function applied(result: FoldResult): Extract<FoldResult, { ok: true }> {
  if (!result.ok) throw new Error(`expected the trade to apply, got ${result.code}: ${result.reason}`);
  return result;
}

const empty = (): Position => emptyPosition(IDS.accountId, IDS.bookId, IDS.securityId);
const noTrades = (): undefined => undefined;

describe('empty position', () => {
  it('starts at zero with no currency, lastSeq 0 and digest d_0 = ""', () => {
    expect(empty()).toEqual({
      partitionKey: 'ACC%5F1_BOOK_SEC',
      ...IDS,
      currency: null,
      netQuantity: '0',
      boughtQuantity: '0',
      soldQuantity: '0',
      boughtNotional: '0',
      soldNotional: '0',
      tradeCount: 0,
      lastSeq: 0,
      digest: '',
    });
  });
});

describe('digest', () => {
  it('is sha256 hex of prev + ":" + tradeId', () => {
    expect(nextDigest('', 'T1')).toBe(sha256(':T1'));
    expect(nextDigest('abc', 'T2')).toBe(sha256('abc:T2'));
  });

  it('matches a hand computation for a two-trade sequence', () => {
    const d1 = createHash('sha256').update(':T1').digest('hex');
    const d2 = createHash('sha256').update(`${d1}:T2`).digest('hex');
    const { position } = foldAll(
      IDS,
      sequenced(newTrade('T1', 'BUY', '1', '1'), newTrade('T2', 'SELL', '1', '1')),
    );
    expect(position.digest).toBe(d2);
  });

  it('changes when two trades are reordered, although the totals do not', () => {
    const t1 = newTrade('T1', 'BUY', '10', '2');
    const t2 = newTrade('T2', 'BUY', '5', '3');
    const inOrder = foldAll(IDS, sequenced(t1, t2)).position;
    const reordered = foldAll(IDS, sequenced(t2, t1)).position;
    expect(reordered.boughtQuantity).toBe(inOrder.boughtQuantity);
    expect(reordered.boughtNotional).toBe(inOrder.boughtNotional);
    expect(reordered.digest).not.toBe(inOrder.digest);
  });

  it('advances with the message id of an AMEND or CANCEL, not the referenced id', () => {
    const { position } = foldAll(
      IDS,
      sequenced(newTrade('T1', 'BUY', '1', '1'), amend('A1', 'T1', 'BUY', '2', '1'), cancel('C1', 'T1')),
    );
    expect(position.digest).toBe(sha256(`${sha256(`${sha256(':T1')}:A1`)}:C1`));
  });
});

describe('NEW', () => {
  it('adds a BUY to the bought side and a SELL to the sold side', () => {
    const first = applied(foldTrade(empty(), newTrade('T1', 'BUY', '100', '10.5'), 1, noTrades));
    expect(first.position).toMatchObject({
      currency: 'USD',
      boughtQuantity: '100',
      boughtNotional: '1050',
      soldQuantity: '0',
      soldNotional: '0',
      netQuantity: '100',
      tradeCount: 1,
      lastSeq: 1,
    });
    expect(first.upserts).toEqual([
      { tradeId: 'T1', side: 'BUY', quantity: '100', price: '10.5', currency: 'USD', status: 'live' },
    ]);
    const second = applied(foldTrade(first.position, newTrade('T2', 'SELL', '250', '10.25'), 2, noTrades));
    expect(second.position).toMatchObject({
      boughtQuantity: '100',
      soldQuantity: '250',
      soldNotional: '2562.5',
      netQuantity: '-150',
      tradeCount: 2,
      lastSeq: 2,
    });
  });

  it('keeps full precision: 999999999999999999.999999999999 × 0.000000000001', () => {
    const { position } = applied(
      foldTrade(
        empty(),
        newTrade('T1', 'BUY', '999999999999999999.999999999999', '0.000000000001'),
        1,
        noTrades,
      ),
    );
    expect(position.boughtNotional).toBe('999999.999999999999999999999999');
  });

  it('rejects a tradeId that already exists as duplicate_trade', () => {
    const lookup = (id: string): EffectiveTrade | undefined =>
      id === 'T1'
        ? { tradeId: 'T1', side: 'BUY', quantity: '1', price: '1', currency: 'USD', status: 'cancelled' }
        : undefined;
    const result = foldTrade(empty(), newTrade('T1', 'BUY', '1', '1'), 1, lookup);
    expect(result).toMatchObject({ ok: false, code: 'duplicate_trade' });
  });

  it('rejects another currency than the position’s as currency_mismatch', () => {
    const { position } = applied(foldTrade(empty(), newTrade('T1', 'BUY', '1', '1', 'USD'), 1, noTrades));
    const result = foldTrade(position, newTrade('T2', 'BUY', '1', '1', 'EUR'), 2, noTrades);
    expect(result).toEqual({ ok: false, code: 'currency_mismatch', reason: expect.stringContaining('EUR') });
  });
});

describe('a NEW / AMEND / CANCEL chain, computed by hand', () => {
  // seq 1  NEW    T1 BUY  100 @ 10.5   bought 100 / 1050                 net 100
  // seq 2  NEW    T2 SELL  40 @ 11.25  sold    40 / 450                  net  60
  // seq 3  AMEND  A1 → T1 BUY 120 @ 10.25: bought 120 / 1230              net  80
  // seq 4  CANCEL C1 → T2: sold 0 / 0                                   net 120
  // seq 5  AMEND  A2 → T1 SELL 5 @ 0.001: bought 0 / 0, sold 5 / 0.005   net  -5
  const chain = sequenced(
    newTrade('T1', 'BUY', '100', '10.5'),
    newTrade('T2', 'SELL', '40', '11.25'),
    amend('A1', 'T1', 'BUY', '120', '10.25'),
    cancel('C1', 'T2'),
    amend('A2', 'T1', 'SELL', '5', '0.001'),
  );

  it.each([
    [
      1,
      {
        boughtQuantity: '100',
        boughtNotional: '1050',
        soldQuantity: '0',
        soldNotional: '0',
        netQuantity: '100',
      },
    ],
    [
      2,
      {
        boughtQuantity: '100',
        boughtNotional: '1050',
        soldQuantity: '40',
        soldNotional: '450',
        netQuantity: '60',
      },
    ],
    [
      3,
      {
        boughtQuantity: '120',
        boughtNotional: '1230',
        soldQuantity: '40',
        soldNotional: '450',
        netQuantity: '80',
      },
    ],
    [
      4,
      {
        boughtQuantity: '120',
        boughtNotional: '1230',
        soldQuantity: '0',
        soldNotional: '0',
        netQuantity: '120',
      },
    ],
    [
      5,
      {
        boughtQuantity: '0',
        boughtNotional: '0',
        soldQuantity: '5',
        soldNotional: '0.005',
        netQuantity: '-5',
      },
    ],
  ])('after seq %i the totals are %j', (n, totals) => {
    const { position, rejections } = foldAll(IDS, chain.slice(0, n));
    expect(rejections).toEqual([]);
    expect(position).toMatchObject({ ...totals, tradeCount: n, lastSeq: n, currency: 'USD' });
  });

  it('leaves the effective state of each NEW trade as amended or cancelled', () => {
    const { effective } = foldAll(IDS, chain);
    expect(Object.fromEntries(effective)).toEqual({
      T1: { tradeId: 'T1', side: 'SELL', quantity: '5', price: '0.001', currency: 'USD', status: 'live' },
      T2: {
        tradeId: 'T2',
        side: 'SELL',
        quantity: '40',
        price: '11.25',
        currency: 'USD',
        status: 'cancelled',
      },
    });
  });

  it('returns the referenced trade’s new state as the upsert of an AMEND and a CANCEL', () => {
    const { position, effective } = foldAll(IDS, chain.slice(0, 2));
    const lookup = (id: string): EffectiveTrade | undefined => effective.get(id);
    const amended = applied(foldTrade(position, amend('A1', 'T1', 'BUY', '120', '10.25'), 3, lookup));
    expect(amended.upserts).toEqual([
      { tradeId: 'T1', side: 'BUY', quantity: '120', price: '10.25', currency: 'USD', status: 'live' },
    ]);
    const cancelled = applied(foldTrade(position, cancel('C1', 'T2'), 3, lookup));
    expect(cancelled.upserts).toEqual([
      { tradeId: 'T2', side: 'SELL', quantity: '40', price: '11.25', currency: 'USD', status: 'cancelled' },
    ]);
  });

  it('accepts a position as PostgreSQL returns it ("1050.000000") and writes it back canonically', () => {
    const { position, effective } = foldAll(IDS, chain.slice(0, 2));
    const padded: Position = {
      ...position,
      boughtQuantity: '100.000000000000',
      boughtNotional: '1050.000000000000000000000000',
      soldQuantity: '40.0000',
      soldNotional: '450.00',
      netQuantity: '60.0',
    };
    const lookup = (id: string): EffectiveTrade | undefined => {
      const e = effective.get(id);
      return e && { ...e, quantity: `${e.quantity}.000`, price: `${e.price}00` };
    };
    const result = applied(foldTrade(padded, amend('A1', 'T1', 'BUY', '120', '10.25'), 3, lookup));
    expect(result.position).toMatchObject({
      boughtQuantity: '120',
      boughtNotional: '1230',
      netQuantity: '80',
    });
    const cancelled = applied(foldTrade(padded, cancel('C1', 'T2'), 3, lookup));
    expect(cancelled.upserts[0]).toMatchObject({ quantity: '40', price: '11.25' });
  });
});

describe('domain rejections leave the position unchanged', () => {
  const base = sequenced(
    newTrade('T1', 'BUY', '10', '2'),
    newTrade('T2', 'SELL', '3', '2'),
    cancel('C1', 'T2'),
  );
  const { position, effective } = foldAll(IDS, base);
  const lookup = (id: string): EffectiveTrade | undefined => effective.get(id);

  it.each<[string, Trade, string]>([
    ['an AMEND of an unknown trade', amend('A9', 'NOPE', 'BUY', '1', '1'), 'unknown_ref'],
    ['a CANCEL of an unknown trade', cancel('C9', 'NOPE'), 'unknown_ref'],
    ['an AMEND that references an AMEND message id', amend('A9', 'C1', 'BUY', '1', '1'), 'unknown_ref'],
    ['an AMEND of a cancelled trade', amend('A9', 'T2', 'BUY', '1', '1'), 'ref_cancelled'],
    ['a second CANCEL of a cancelled trade', cancel('C9', 'T2'), 'ref_cancelled'],
    ['an AMEND in another currency', amend('A9', 'T1', 'BUY', '1', '1', 'EUR'), 'currency_mismatch'],
    ['a CANCEL that names another currency', cancel('C9', 'T1', { currency: 'EUR' }), 'currency_mismatch'],
    ['a NEW in another currency', newTrade('T9', 'BUY', '1', '1', 'GBP'), 'currency_mismatch'],
    ['a NEW that reuses a trade id', newTrade('T1', 'BUY', '1', '1'), 'duplicate_trade'],
    ['an AMEND whose own id is a NEW trade id', amend('T2', 'T1', 'BUY', '1', '1'), 'duplicate_trade'],
  ])('%s is rejected as %s', (_name, trade, code) => {
    const result = foldTrade(position, trade, 4, lookup);
    expect(result).toEqual({ ok: false, code, reason: expect.any(String) });
    expect(position.lastSeq).toBe(3);
    expect(foldAll(IDS, base).position).toEqual(position);
  });

  it('skipSeq only advances lastSeq', () => {
    expect(skipSeq(position, 4)).toEqual({ ...position, lastSeq: 4 });
  });

  it('foldAll collects rejections, skips their seq and goes on', () => {
    const result = foldAll(IDS, [
      ...base,
      { seq: 4, trade: amend('A9', 'NOPE', 'BUY', '1', '1') },
      { seq: 5, trade: newTrade('T3', 'BUY', '1', '5') },
    ]);
    expect(result.rejections).toEqual([
      { seq: 4, tradeId: 'A9', code: 'unknown_ref', reason: expect.any(String) },
    ]);
    expect(result.position).toMatchObject({
      lastSeq: 5,
      tradeCount: 4,
      boughtQuantity: '11',
      boughtNotional: '25', // 10 × 2 + 1 × 5
      soldQuantity: '0',
      netQuantity: '11',
      digest: nextDigest(position.digest, 'T3'),
    });
  });

  it('a rejected first NEW does not set the currency', () => {
    const lookup1 = (id: string): EffectiveTrade | undefined =>
      id === 'T1'
        ? { tradeId: 'T1', side: 'BUY', quantity: '1', price: '1', currency: 'JPY', status: 'live' }
        : undefined;
    expect(foldTrade(empty(), newTrade('T1', 'BUY', '1', '1', 'EUR'), 1, lookup1)).toMatchObject({
      ok: false,
    });
    const fresh = applied(foldTrade(empty(), newTrade('T2', 'BUY', '1', '1', 'EUR'), 1, noTrades));
    expect(fresh.position.currency).toBe('EUR');
  });
});

describe('sequence and partition invariants are programming errors, not rejections', () => {
  const one = applied(foldTrade(empty(), newTrade('T1', 'BUY', '1', '1'), 1, noTrades)).position;

  it.each([
    ['a gap', 3],
    ['a replay of the last seq', 1],
    ['an older seq', 0],
    ['a non-integer seq', 2.5],
    ['NaN', Number.NaN],
  ])('foldTrade throws on %s', (_name, seq) => {
    expect(() => foldTrade(one, newTrade('T2', 'BUY', '1', '1'), seq, noTrades)).toThrow(FoldInvariantError);
  });

  it('foldTrade requires the first seq to be 1', () => {
    expect(() => foldTrade(empty(), newTrade('T1', 'BUY', '1', '1'), 2, noTrades)).toThrow(/expected seq 1/);
  });

  it('skipSeq enforces the same order', () => {
    expect(() => skipSeq(one, 3)).toThrow(FoldInvariantError);
    expect(() => skipSeq(one, 1)).toThrow(FoldInvariantError);
  });

  it('foldTrade throws on a trade of another partition', () => {
    const other = { ...newTrade('T2', 'BUY', '1', '1'), bookId: 'OTHER' };
    expect(() => foldTrade(one, other, 2, noTrades)).toThrow(/belongs to partition ACC%5F1_OTHER_SEC/);
  });
});
