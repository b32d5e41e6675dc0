/**
 * Small builders shared by the tests of src/worker/apply.ts: trades from a
 * short spec, queue items in seq order, batches, the two policies.
 */
import type { Kysely } from 'kysely';
import { getPosition, type Database } from '../../src/db';
import {
  canonicalDecimalString,
  canonicalTradeJson,
  validateTrade,
  type PartitionIds,
  type Trade,
} from '../../src/domain';
import type { Batch, QueuedItem } from '../../src/queue';

export type Spec =
  | { type: 'NEW'; id: string; side?: 'BUY' | 'SELL'; quantity?: string; price?: string; currency?: string }
  | {
      type: 'AMEND';
      id: string;
      ref: string;
      side?: 'BUY' | 'SELL';
      quantity?: string;
      price?: string;
      currency?: string;
    }
  | { type: 'CANCEL'; id: string; ref: string };

/** A validated trade of partition `ids` (defaults: BUY 100 @ 10.5 USD). */
export function makeTrade(ids: PartitionIds, s: Spec): Trade {
  const base = {
    tradeId: s.id,
    accountId: ids.accountId,
    bookId: ids.bookId,
    securityId: ids.securityId,
    tradeTime: '2026-03-02T10:15:30.123+01:00',
  };
  const input =
    s.type === 'CANCEL'
      ? { ...base, type: 'CANCEL', refTradeId: s.ref }
      : {
          ...base,
          type: s.type,
          ...(s.type === 'AMEND' ? { refTradeId: s.ref } : {}),
          side: s.side ?? 'BUY',
          quantity: s.quantity ?? '100',
          price: s.price ?? '10.5',
          currency: s.currency ?? 'USD',
        };
  const r = validateTrade(input);
  if (!r.ok) throw new Error(`bad test trade ${s.id}: ${JSON.stringify(r.errors)}`);
  return r.trade;
}

/** Queue items of `trades` at consecutive seqs from `firstSeq`, bodies as the producer queues them. */
export function queued(trades: readonly Trade[], firstSeq = 1): QueuedItem[] {
  return trades.map((t, i) => ({
    seq: firstSeq + i,
    enqueuedAt: Date.parse('2026-03-02T09:15:31Z') + i,
    tradeId: t.tradeId,
    body: canonicalTradeJson(t),
  }));
}

export function batchOf(pk: string, items: QueuedItem[], epoch = 1): Batch {
  return { partitionKey: pk, epoch, items, attempt: 0 };
}

export const dl = { policy: 'dead-letter' } as const;
export const halt = { policy: 'halt' } as const;

/** The error `p` rejects with (fails when it resolves). */
export async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

/** The stored position in the fold's terms (canonical decimals), with its lease epoch; undefined when absent. */
export async function storedPosition(db: Kysely<Database>, pk: string) {
  const p = await getPosition(db, pk);
  if (!p) return undefined;
  return {
    currency: p.currency,
    netQuantity: canonicalDecimalString(p.netQuantity),
    boughtQuantity: canonicalDecimalString(p.boughtQuantity),
    soldQuantity: canonicalDecimalString(p.soldQuantity),
    boughtNotional: canonicalDecimalString(p.boughtNotional),
    soldNotional: canonicalDecimalString(p.soldNotional),
    tradeCount: p.tradeCount,
    lastSeq: p.lastSeq,
    digest: p.digest,
    leaseEpoch: p.leaseEpoch,
  };
}
