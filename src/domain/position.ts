/**
 * The position fold: how one trade message changes the position of its
 * partition.
 *
 * Pure and synchronous so that the worker (inside its PostgreSQL
 * transaction), the tests and any replay tool compute exactly the same
 * numbers and the same digest. The caller supplies the effective state of
 * referenced trades through `lookup` and stores the returned `upserts`.
 */
import { sha256Hex } from './hash';

import { add, type Decimal, mul, parseDecimalLoose, sub, toString as decimalToString } from './decimal';
import { partitionKey, type PartitionIds } from './partition';
import type { Side, Trade } from './trade';

/**
 * The aggregate of one partition. Decimal fields are canonical decimal
 * strings; the fold also accepts PostgreSQL's padded form ("12.5000") on
 * input, so a row can be passed back in as read.
 */
export interface Position {
  readonly partitionKey: string;
  readonly accountId: string;
  readonly bookId: string;
  readonly securityId: string;
  /** Set by the first applied NEW; every later NEW and AMEND must match it. */
  readonly currency: string | null;
  readonly netQuantity: string;
  readonly boughtQuantity: string;
  readonly soldQuantity: string;
  readonly boughtNotional: string;
  readonly soldNotional: string;
  /** Applied messages: NEW, AMEND and CANCEL each count one; rejected ones do not. */
  readonly tradeCount: number;
  /** The seq of the last message consumed, applied or rejected: the PostgreSQL fencing token. */
  readonly lastSeq: number;
  /** d_n = sha256(d_{n-1} + ":" + tradeId) over applied messages, d_0 = ''. */
  readonly digest: string;
}

/**
 * The current state of a NEW trade after the amendments and cancel applied
 * so far. Stored per trade so that an AMEND or CANCEL can remove exactly what
 * the trade contributes now.
 */
export interface EffectiveTrade {
  /** The id of the original NEW trade (never the id of an AMEND or CANCEL message). */
  readonly tradeId: string;
  readonly side: Side;
  readonly quantity: string;
  readonly price: string;
  readonly currency: string;
  readonly status: 'live' | 'cancelled';
}

/**
 * Looks up the effective state of a NEW trade by its id, within the same
 * partition: a trade of another partition must come back `undefined`, or an
 * AMEND could move quantity between positions.
 */
export type EffectiveTradeLookup = (tradeId: string) => EffectiveTrade | undefined;

/**
 * Why the domain refused a message. Permanent: retrying the same message
 * against the same state gives the same answer, so the caller dead-letters
 * or halts instead of retrying.
 */
export type FoldRejectionCode = 'duplicate_trade' | 'unknown_ref' | 'ref_cancelled' | 'currency_mismatch';

/** Every {@link FoldRejectionCode}, for catalogues and metrics labels. */
export const FOLD_REJECTION_CODES: readonly FoldRejectionCode[] = [
  'duplicate_trade',
  'unknown_ref',
  'ref_cancelled',
  'currency_mismatch',
];

/** Outcome of {@link foldTrade}. On rejection the position is unchanged and nothing is to be stored but the dead letter. */
export type FoldResult =
  | { ok: true; position: Position; upserts: EffectiveTrade[] }
  | { ok: false; code: FoldRejectionCode; reason: string };

/**
 * A caller bug, not a property of the data: a seq gap or reordering, or a
 * trade routed to the wrong partition. Never dead-letter on it; stop and
 * look, because continuing would break ordering (I1) or exactly-once (I4).
 */
export class FoldInvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FoldInvariantError';
  }
}

/** The position of a partition before its first trade; its digest is d_0 = ''. */
export function emptyPosition(accountId: string, bookId: string, securityId: string): Position {
  return {
    partitionKey: partitionKey(accountId, bookId, securityId),
    accountId,
    bookId,
    securityId,
    currency: null,
    netQuantity: '0',
    boughtQuantity: '0',
    soldQuantity: '0',
    boughtNotional: '0',
    soldNotional: '0',
    tradeCount: 0,
    lastSeq: 0,
    digest: '',
  };
}

/**
 * One step of the order-sensitive digest: sha256 hex of `prev + ":" + tradeId`.
 * Comparing digests shows from outside whether two stores applied the same
 * messages in the same order.
 */
export function nextDigest(prev: string, tradeId: string): string {
  return sha256Hex(`${prev}:${tradeId}`);
}

function checkSeq(position: Position, seq: number): void {
  if (!Number.isSafeInteger(seq) || seq !== position.lastSeq + 1) {
    throw new FoldInvariantError(
      `partition ${position.partitionKey}: expected seq ${position.lastSeq + 1} after lastSeq ${position.lastSeq}, got ${seq}; ` +
        'a gap or reordering means the caller skipped or reordered a message',
    );
  }
}

/**
 * Consumes a seq without applying anything, for a message that was rejected
 * (and dead-lettered) or skipped by an operator: the fencing token must still
 * advance, or the message would be offered again.
 * Throws {@link FoldInvariantError} unless `seq === lastSeq + 1`.
 */
export function skipSeq(position: Position, seq: number): Position {
  checkSeq(position, seq);
  return { ...position, lastSeq: seq };
}

interface Totals {
  boughtQuantity: Decimal;
  soldQuantity: Decimal;
  boughtNotional: Decimal;
  soldNotional: Decimal;
}

/**
 * The parsed totals of positions this module built: folding a batch then
 * parses each position's decimals once, not once per trade. Positions are
 * never mutated (every step returns a new object), so the entry stays true.
 */
const parsedTotals = new WeakMap<Position, Totals>();

function readTotals(p: Position): Totals {
  return (
    parsedTotals.get(p) ?? {
      boughtQuantity: parseDecimalLoose(p.boughtQuantity),
      soldQuantity: parseDecimalLoose(p.soldQuantity),
      boughtNotional: parseDecimalLoose(p.boughtNotional),
      soldNotional: parseDecimalLoose(p.soldNotional),
    }
  );
}

/** Adds (direction 1) or removes (direction -1) one trade's contribution. */
function contribute(
  totals: Totals,
  leg: { side: Side; quantity: string; price: string },
  direction: 1 | -1,
): Totals {
  const quantity = parseDecimalLoose(leg.quantity);
  const notional = mul(quantity, parseDecimalLoose(leg.price));
  const apply = direction === 1 ? add : sub;
  return leg.side === 'BUY'
    ? {
        ...totals,
        boughtQuantity: apply(totals.boughtQuantity, quantity),
        boughtNotional: apply(totals.boughtNotional, notional),
      }
    : {
        ...totals,
        soldQuantity: apply(totals.soldQuantity, quantity),
        soldNotional: apply(totals.soldNotional, notional),
      };
}

function applied(
  position: Position,
  totals: Totals,
  currency: string | null,
  tradeId: string,
  seq: number,
): Position {
  const next: Position = {
    ...position,
    currency,
    netQuantity: decimalToString(sub(totals.boughtQuantity, totals.soldQuantity)),
    boughtQuantity: decimalToString(totals.boughtQuantity),
    soldQuantity: decimalToString(totals.soldQuantity),
    boughtNotional: decimalToString(totals.boughtNotional),
    soldNotional: decimalToString(totals.soldNotional),
    tradeCount: position.tradeCount + 1,
    lastSeq: seq,
    digest: nextDigest(position.digest, tradeId),
  };
  parsedTotals.set(next, totals);
  return next;
}

function canonical(text: string): string {
  return decimalToString(parseDecimalLoose(text));
}

function reject(code: FoldRejectionCode, reason: string): FoldResult {
  return { ok: false, code, reason };
}

/**
 * Applies one message at `seq` to `position`.
 *
 * - NEW adds its quantity and quantity × price to the bought or sold side.
 * - AMEND X removes X's current contribution and adds the amend's; X takes
 *   the amend's side, quantity, price and currency and stays live.
 * - CANCEL X removes X's current contribution; X becomes cancelled. A
 *   currency on the CANCEL must match; its side, quantity and price are
 *   informational and ignored.
 *
 * Domain refusals come back as `{ ok: false }` with the position unchanged;
 * the caller records a dead letter and calls {@link skipSeq}. A seq other
 * than `lastSeq + 1`, or a trade of another partition, throws
 * {@link FoldInvariantError}.
 */
export function foldTrade(
  position: Position,
  trade: Trade,
  seq: number,
  lookup: EffectiveTradeLookup,
): FoldResult {
  checkSeq(position, seq);
  if (
    trade.accountId !== position.accountId ||
    trade.bookId !== position.bookId ||
    trade.securityId !== position.securityId
  ) {
    throw new FoldInvariantError(
      `trade ${trade.tradeId} belongs to partition ${partitionKey(trade.accountId, trade.bookId, trade.securityId)}, ` +
        `not ${position.partitionKey}`,
    );
  }

  // Message ids are unique across types (the queue enforces it); an AMEND or
  // CANCEL reusing a NEW trade's id would make that id mean two things.
  if (lookup(trade.tradeId) !== undefined) {
    return reject('duplicate_trade', `trade ${trade.tradeId} already exists in ${position.partitionKey}`);
  }

  const totals = readTotals(position);

  if (trade.type === 'NEW') {
    if (position.currency !== null && trade.currency !== position.currency) {
      return reject(
        'currency_mismatch',
        `trade ${trade.tradeId} is in ${trade.currency} but position ${position.partitionKey} is in ${position.currency}`,
      );
    }
    const effective: EffectiveTrade = {
      tradeId: trade.tradeId,
      side: trade.side,
      quantity: canonical(trade.quantity),
      price: canonical(trade.price),
      currency: trade.currency,
      status: 'live',
    };
    return {
      ok: true,
      position: applied(position, contribute(totals, effective, 1), trade.currency, trade.tradeId, seq),
      upserts: [effective],
    };
  }

  const ref = lookup(trade.refTradeId);
  if (ref === undefined) {
    return reject(
      'unknown_ref',
      `${trade.type} ${trade.tradeId} references ${trade.refTradeId}, which is not a NEW trade of ${position.partitionKey}`,
    );
  }
  if (ref.status === 'cancelled') {
    return reject(
      'ref_cancelled',
      `${trade.type} ${trade.tradeId} references ${trade.refTradeId}, which is already cancelled`,
    );
  }
  // The referenced trade was applied, so the position has a currency; fall back to the ref's for a hand-built position.
  const positionCurrency = position.currency ?? ref.currency;
  if (trade.currency !== undefined && trade.currency !== positionCurrency) {
    return reject(
      'currency_mismatch',
      `${trade.type} ${trade.tradeId} is in ${trade.currency} but position ${position.partitionKey} is in ${positionCurrency}`,
    );
  }

  const without = contribute(totals, ref, -1);
  if (trade.type === 'AMEND') {
    const amended: EffectiveTrade = {
      tradeId: ref.tradeId,
      side: trade.side,
      quantity: canonical(trade.quantity),
      price: canonical(trade.price),
      currency: trade.currency,
      status: 'live',
    };
    return {
      ok: true,
      position: applied(position, contribute(without, amended, 1), positionCurrency, trade.tradeId, seq),
      upserts: [amended],
    };
  }

  const cancelled: EffectiveTrade = {
    ...ref,
    quantity: canonical(ref.quantity),
    price: canonical(ref.price),
    status: 'cancelled',
  };
  return {
    ok: true,
    position: applied(position, without, positionCurrency, trade.tradeId, seq),
    upserts: [cancelled],
  };
}

/** A trade with the seq the queue assigned to it. */
export interface SequencedTrade {
  readonly seq: number;
  readonly trade: Trade;
}

/** A message the fold refused, as the worker would dead-letter it. */
export interface FoldRejection {
  readonly seq: number;
  readonly tradeId: string;
  readonly code: FoldRejectionCode;
  readonly reason: string;
}

/** Outcome of {@link foldAll}. */
export interface FoldAllResult {
  readonly position: Position;
  /** The effective state of every NEW trade, by tradeId, as the worker would have stored it. */
  readonly effective: ReadonlyMap<string, EffectiveTrade>;
  readonly rejections: readonly FoldRejection[];
}

/**
 * Folds a whole sequence from the empty position with an in-memory lookup:
 * the oracle that tests compare the worker's PostgreSQL state against.
 * Rejected messages are collected and their seq skipped, as the dead-letter
 * policy does.
 */
export function foldAll(ids: PartitionIds, trades: readonly SequencedTrade[]): FoldAllResult {
  let position = emptyPosition(ids.accountId, ids.bookId, ids.securityId);
  const effective = new Map<string, EffectiveTrade>();
  const rejections: FoldRejection[] = [];
  for (const { seq, trade } of trades) {
    const result = foldTrade(position, trade, seq, (id) => effective.get(id));
    if (result.ok) {
      position = result.position;
      for (const upsert of result.upserts) effective.set(upsert.tradeId, upsert);
    } else {
      rejections.push({ seq, tradeId: trade.tradeId, code: result.code, reason: result.reason });
      position = skipSeq(position, seq);
    }
  }
  return { position, effective, rejections };
}
