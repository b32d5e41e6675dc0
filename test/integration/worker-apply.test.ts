/**
 * applyBatch against the harness's real PostgreSQL (a fresh database for this
 * file): the fold matches foldAll, redelivery and zombies are fenced, gaps
 * halt, the permanent-failure policies, duplicates past the dedup window.
 */
import fc from 'fast-check';
import { sql, type Kysely } from 'kysely';
import { Client } from 'pg';
import { createDb, getPosition, migrateToLatest, type Database, type DbHandle } from '../../src/db';
import {
  canonicalDecimalString,
  canonicalTradeJson,
  foldAll,
  partitionKey,
  type PartitionIds,
  type SequencedTrade,
  type Trade,
} from '../../src/domain';
import { HaltPartitionError, type QueuedItem } from '../../src/queue';
import { applyBatch, FencedError, skipTrade, type ApplyResult } from '../../src/worker/apply';
import {
  batchOf,
  dl,
  halt,
  makeTrade,
  queued,
  rejection,
  storedPosition as storedPositionIn,
} from '../helpers/apply-fixtures';
import { createTestDatabase, type TestDatabase } from '../helpers/isolation';
import { waitFor } from '../helpers/processes';

let database: TestDatabase;
let handle: DbHandle;
let db: Kysely<Database>;

beforeAll(async () => {
  database = await createTestDatabase();
  handle = createDb({ databaseUrl: database.url, poolSize: 6 });
  db = handle.db;
  await migrateToLatest(db as Kysely<unknown>);
});
afterAll(async () => {
  await handle?.close();
  await database?.drop();
});

let partitionCounter = 0;
/** A partition of its own for each test, so that tests share one database. */
function freshPartition(): PartitionIds & { pk: string } {
  const ids = {
    accountId: `ACC_${++partitionCounter}`,
    bookId: 'EQ_DESK.1',
    securityId: `SEC-${partitionCounter}`,
  };
  return { ...ids, pk: partitionKey(ids.accountId, ids.bookId, ids.securityId) };
}

/** The stored position in the fold's terms (canonical decimals). */
const storedPosition = (pk: string) => storedPositionIn(db, pk);

function expectedPosition(ids: PartitionIds, trades: readonly Trade[]) {
  const seqd: SequencedTrade[] = trades.map((trade, i) => ({ seq: i + 1, trade }));
  const { position, effective, rejections } = foldAll(ids, seqd);
  const { partitionKey: _pk, accountId: _a, bookId: _b, securityId: _s, ...fields } = position;
  return { fields, effective, rejections };
}

async function effectiveStates(pk: string) {
  const rows = await db
    .selectFrom('trades')
    .select(['trade_id', 'eff_side', 'eff_quantity', 'eff_price', 'eff_currency', 'status'])
    .where('partition_key', '=', pk)
    .where('type', '=', 'NEW')
    .orderBy('trade_id')
    .execute();
  return rows.map((r) => ({
    tradeId: r.trade_id,
    side: r.eff_side,
    quantity: canonicalDecimalString(r.eff_quantity!),
    price: canonicalDecimalString(r.eff_price!),
    currency: r.eff_currency,
    status: r.status,
  }));
}

async function deadLetters(pk: string) {
  return db.selectFrom('dead_letters').selectAll().where('partition_key', '=', pk).orderBy('seq').execute();
}

async function expectMatchesFold(ids: PartitionIds & { pk: string }, trades: readonly Trade[]) {
  const { fields, effective, rejections } = expectedPosition(ids, trades);
  const stored = await storedPosition(ids.pk);
  const { leaseEpoch: _e, ...storedFields } = stored!;
  expect(storedFields).toEqual(fields);
  expect(await effectiveStates(ids.pk)).toEqual(
    [...effective.values()].sort((a, b) => (a.tradeId < b.tradeId ? -1 : 1)),
  );
  const letters = await deadLetters(ids.pk);
  expect(letters.map((d) => ({ seq: Number(d.seq), tradeId: d.trade_id, code: d.reason_code }))).toEqual(
    rejections.map((r) => ({ seq: r.seq, tradeId: r.tradeId, code: r.code })),
  );
}

async function applyInBatches(
  pk: string,
  items: QueuedItem[],
  sizes: number[],
  opts = dl,
  epoch = 1,
): Promise<ApplyResult[]> {
  const results: ApplyResult[] = [];
  let at = 0;
  for (let i = 0; at < items.length; i++) {
    const n = Math.max(1, sizes[i % Math.max(1, sizes.length)] ?? 3);
    results.push(await applyBatch(db, batchOf(pk, items.slice(at, at + n), epoch), opts));
    at += n;
  }
  return results;
}

describe('ordering and the fold', () => {
  test('a NEW/AMEND/CANCEL chain split across batches gives exactly foldAll’s position, digest and effective trades', async () => {
    const ids = freshPartition();
    const trades = [
      makeTrade(ids, { type: 'NEW', id: 'N1', side: 'BUY', quantity: '100', price: '10.25' }),
      makeTrade(ids, { type: 'NEW', id: 'N2', side: 'SELL', quantity: '40', price: '11' }),
      makeTrade(ids, { type: 'AMEND', id: 'A1', ref: 'N1', side: 'BUY', quantity: '120.5', price: '10.3' }),
      makeTrade(ids, {
        type: 'NEW',
        id: 'N3',
        side: 'BUY',
        quantity: '0.000000000001',
        price: '999999999999999999',
      }),
      makeTrade(ids, { type: 'CANCEL', id: 'C2', ref: 'N2' }),
      makeTrade(ids, { type: 'AMEND', id: 'A2', ref: 'N1', side: 'SELL', quantity: '7', price: '0' }),
      makeTrade(ids, { type: 'NEW', id: 'N4', side: 'SELL', quantity: '3', price: '12.125' }),
      makeTrade(ids, { type: 'AMEND', id: 'A3', ref: 'N4', side: 'SELL', quantity: '4', price: '12.5' }),
      makeTrade(ids, { type: 'CANCEL', id: 'C3', ref: 'N3' }),
    ];
    // The AMEND of N4 comes in the same batch as N4 itself: the in-memory map must see it.
    const results = await applyInBatches(ids.pk, queued(trades), [2, 3, 4]);
    expect(results.map((r) => r.lastSeq)).toEqual([2, 5, 9]);
    expect(results.reduce((n, r) => n + r.applied, 0)).toBe(9);
    await expectMatchesFold(ids, trades);
    const stored = await db
      .selectFrom('trades')
      .select(['trade_id', 'seq', 'status', 'trade_time', 'enqueued_at'])
      .where('partition_key', '=', ids.pk)
      .orderBy('seq')
      .execute();
    expect(stored.map((r) => [r.trade_id, Number(r.seq), r.status])).toEqual([
      ['N1', 1, 'live'],
      ['N2', 2, 'cancelled'],
      ['A1', 3, 'amend'],
      ['N3', 4, 'cancelled'],
      ['C2', 5, 'cancel'],
      ['A2', 6, 'amend'],
      ['N4', 7, 'live'],
      ['A3', 8, 'amend'],
      ['C3', 9, 'cancel'],
    ]);
    expect(stored[0]!.trade_time.toISOString()).toBe('2026-03-02T09:15:30.123Z');
    expect(stored[0]!.enqueued_at.toISOString()).toBe('2026-03-02T09:15:31.000Z');
  });

  test('property: any chain (rejections included) in any batch split gives foldAll’s result', async () => {
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('NEW' as const),
        side: fc.constantFrom('BUY' as const, 'SELL' as const),
        q: fc.integer({ min: 1, max: 10_000 }),
        p: fc.integer({ min: 0, max: 100_000 }),
        eur: fc.boolean(),
      }),
      fc.record({
        kind: fc.constant('AMEND' as const),
        ref: fc.nat(),
        side: fc.constantFrom('BUY' as const, 'SELL' as const),
        q: fc.integer({ min: 1, max: 10_000 }),
        p: fc.integer({ min: 0, max: 100_000 }),
      }),
      fc.record({ kind: fc.constant('CANCEL' as const), ref: fc.nat() }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(op, { minLength: 1, maxLength: 25 }),
        fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 6 }),
        async (ops, sizes) => {
          const ids = freshPartition();
          const news: string[] = [];
          const trades = ops.map((o, i) => {
            const id = `${ids.accountId.replace('_', '')}-T${i}`;
            if (o.kind === 'NEW') {
              news.push(id);
              // A rare EUR trade is a currency mismatch once the position is in USD.
              return makeTrade(ids, {
                type: 'NEW',
                id,
                side: o.side,
                quantity: `${o.q}.5`,
                price: `${o.p / 100}`,
                currency: o.eur && i % 3 === 0 ? 'EUR' : 'USD',
              });
            }
            // ref beyond the known NEWs: an unknown trade.
            const ref = news[o.ref % (news.length + 1)] ?? `UNKNOWN${i}`;
            return o.kind === 'AMEND'
              ? makeTrade(ids, {
                  type: 'AMEND',
                  id,
                  ref,
                  side: o.side,
                  quantity: String(o.q),
                  price: `${o.p / 1000}`,
                })
              : makeTrade(ids, { type: 'CANCEL', id, ref });
          });
          await applyInBatches(ids.pk, queued(trades), sizes);
          await expectMatchesFold(ids, trades);
        },
      ),
      { numRuns: 25 },
    );
  });
});

describe('fencing', () => {
  test('redelivering a committed batch changes nothing', async () => {
    const ids = freshPartition();
    const trades = [
      makeTrade(ids, { type: 'NEW', id: 'R1' }),
      makeTrade(ids, { type: 'AMEND', id: 'R2', ref: 'R1', quantity: '5' }),
      makeTrade(ids, { type: 'AMEND', id: 'R3', ref: 'UNKNOWN' }),
    ];
    const b = batchOf(ids.pk, queued(trades), 2);
    await applyBatch(db, b, dl);
    const before = await getPosition(db, ids.pk);
    const tradesBefore = await db
      .selectFrom('trades')
      .selectAll()
      .where('partition_key', '=', ids.pk)
      .orderBy('seq')
      .execute();
    const again = await applyBatch(db, b, dl);
    expect(again).toEqual({
      applied: 0,
      deadLettered: 0,
      duplicates: 0,
      skipped: 3,
      lastSeq: 3,
      deadLetters: [],
    });
    expect(await getPosition(db, ids.pk)).toEqual(before); // updated_at included: not even rewritten
    expect(
      await db.selectFrom('trades').selectAll().where('partition_key', '=', ids.pk).orderBy('seq').execute(),
    ).toEqual(tradesBefore);
    expect(await deadLetters(ids.pk)).toHaveLength(1);
    await expectMatchesFold(ids, trades);
  });

  test('a batch under a stale epoch is refused with FencedError and changes nothing', async () => {
    const ids = freshPartition();
    const trades = [
      makeTrade(ids, { type: 'NEW', id: 'E1' }),
      makeTrade(ids, { type: 'NEW', id: 'E2' }),
      makeTrade(ids, { type: 'NEW', id: 'E3' }),
    ];
    const items = queued(trades);
    await applyBatch(db, batchOf(ids.pk, items.slice(0, 1), 5), dl);
    const before = await getPosition(db, ids.pk);
    const err = await rejection(applyBatch(db, batchOf(ids.pk, items.slice(1), 4), dl));
    expect(err).toBeInstanceOf(FencedError);
    expect(err).toMatchObject({ partitionKey: ids.pk, batchEpoch: 4, storedEpoch: 5 });
    expect(await getPosition(db, ids.pk)).toEqual(before);
    expect(
      await db.selectFrom('trades').select('trade_id').where('partition_key', '=', ids.pk).execute(),
    ).toEqual([{ trade_id: 'E1' }]);
    // The current lease (same epoch) and a newer one go on.
    await applyBatch(db, batchOf(ids.pk, items.slice(1, 2), 5), dl);
    await applyBatch(db, batchOf(ids.pk, items.slice(1), 6), dl);
    expect((await storedPosition(ids.pk))!.leaseEpoch).toBe(6);
    await expectMatchesFold(ids, trades);
  });

  test('a seq gap halts (seq_gap) and applies nothing past it', async () => {
    const ids = freshPartition();
    const trades = [1, 2, 3, 4, 5].map((n) => makeTrade(ids, { type: 'NEW', id: `G${n}` }));
    const items = queued(trades);
    await applyBatch(db, batchOf(ids.pk, items.slice(0, 2)), dl);
    const before = await getPosition(db, ids.pk);
    for (const policy of [dl, halt]) {
      const err = await rejection(applyBatch(db, batchOf(ids.pk, items.slice(3)), policy));
      expect(err).toBeInstanceOf(HaltPartitionError);
      expect((err as HaltPartitionError).reason).toMatchObject({ code: 'seq_gap', tradeId: 'G4', seq: 4 });
    }
    expect(await getPosition(db, ids.pk)).toEqual(before);
  });

  test('a trade offered at or below last_seq that PostgreSQL never saw halts (seq_regression) instead of being dropped', async () => {
    const ids = freshPartition();
    const trades = [makeTrade(ids, { type: 'NEW', id: 'S1' }), makeTrade(ids, { type: 'NEW', id: 'S2' })];
    await applyBatch(db, batchOf(ids.pk, queued(trades)), dl);
    // Redis lost its state: the counter restarted and a new trade got seq 1 again.
    const reset = queued([makeTrade(ids, { type: 'NEW', id: 'S-after-reset' })]);
    const err = await rejection(applyBatch(db, batchOf(ids.pk, reset, 2), dl));
    expect((err as HaltPartitionError).reason).toMatchObject({
      code: 'seq_regression',
      tradeId: 'S-after-reset',
      seq: 1,
    });
    await expectMatchesFold(ids, trades);
  });

  test('two concurrent batches of one partition: the lower epoch commits only before the higher, never after', async () => {
    async function race(order: 'low-first' | 'high-first') {
      const ids = freshPartition();
      const trades = Array.from({ length: 10 }, (_, i) =>
        i === 6
          ? makeTrade(ids, { type: 'AMEND', id: `${order}-K${i}`, ref: `${order}-K1`, quantity: '3' })
          : makeTrade(ids, { type: 'NEW', id: `${order}-K${i}`, side: i % 2 ? 'BUY' : 'SELL' }),
      );
      const items = queued(trades);
      await applyBatch(db, batchOf(ids.pk, items.slice(0, 4), 1), dl);
      // The zombie (epoch 2) read seqs 5..8; the new owner (epoch 3) re-reads from the head: 5..10.
      const low = batchOf(ids.pk, items.slice(4, 8), 2);
      const high = batchOf(ids.pk, items.slice(4), 3);

      // Hold the row lock so that both wait, and queue them in a known order.
      const holder = new Client({ connectionString: database.url });
      await holder.connect();
      try {
        await holder.query('begin');
        await holder.query('select 1 from positions where partition_key = $1 for update', [ids.pk]);
        const waiting = async (n: number) => {
          const r = await sql<{
            n: string;
          }>`select count(*) as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`.execute(
            db,
          );
          return Number(r.rows[0]!.n) >= n;
        };
        const [first, second] = order === 'low-first' ? [low, high] : [high, low];
        const p1 = applyBatch(db, first, dl).then(
          (r) => ({ ok: true as const, r }),
          (e: unknown) => ({ ok: false as const, e }),
        );
        await waitFor('the first batch to wait for the lock', () => waiting(1), 10_000, 10);
        const p2 = applyBatch(db, second, dl).then(
          (r) => ({ ok: true as const, r }),
          (e: unknown) => ({ ok: false as const, e }),
        );
        await waitFor('the second batch to wait for the lock', () => waiting(2), 10_000, 10);
        await holder.query('commit');
        const [r1, r2] = await Promise.all([p1, p2]);
        const byEpoch = order === 'low-first' ? { low: r1, high: r2 } : { low: r2, high: r1 };
        return { ids, trades, ...byEpoch };
      } finally {
        await holder.end();
      }
    }

    const a = await race('low-first');
    expect(a.low).toMatchObject({ ok: true, r: { applied: 4, lastSeq: 8 } });
    expect(a.high).toMatchObject({ ok: true, r: { skipped: 4, applied: 2, lastSeq: 10 } });
    expect((await storedPosition(a.ids.pk))!.leaseEpoch).toBe(3);
    await expectMatchesFold(a.ids, a.trades);

    const b = await race('high-first');
    expect(b.high).toMatchObject({ ok: true, r: { applied: 6, lastSeq: 10 } });
    expect(b.low.ok).toBe(false);
    expect((b.low as { e: unknown }).e).toBeInstanceOf(FencedError);
    expect((await storedPosition(b.ids.pk))!.leaseEpoch).toBe(3);
    await expectMatchesFold(b.ids, b.trades);
  });
});

describe('permanent failures', () => {
  test('dead-letter policy records an AMEND of an unknown trade with its reason and goes on', async () => {
    const ids = freshPartition();
    const trades = [
      makeTrade(ids, { type: 'NEW', id: 'D1' }),
      makeTrade(ids, { type: 'AMEND', id: 'D2', ref: 'NOPE' }),
      makeTrade(ids, { type: 'NEW', id: 'D3', side: 'SELL' }),
    ];
    const r = await applyBatch(db, batchOf(ids.pk, queued(trades)), dl);
    expect(r).toMatchObject({ applied: 2, deadLettered: 1, lastSeq: 3 });
    expect(r.deadLetters).toEqual([
      { tradeId: 'D2', seq: 2, code: 'unknown_ref', reason: expect.stringContaining('NOPE') },
    ]);
    const [letter] = await deadLetters(ids.pk);
    expect(letter).toMatchObject({
      trade_id: 'D2',
      seq: '2',
      reason_code: 'unknown_ref',
      payload: JSON.parse(canonicalTradeJson(trades[1]!)),
    });
    expect(letter!.reason).toMatch(/AMEND D2 references NOPE, which is not a NEW trade/);
    await expectMatchesFold(ids, trades);
  });

  test('an unparsable or invalid body is dead-lettered as invalid_payload', async () => {
    const ids = freshPartition();
    const good = makeTrade(ids, { type: 'NEW', id: 'V1' });
    const items: QueuedItem[] = [
      { seq: 1, enqueuedAt: Date.now(), tradeId: 'V0', body: '{not json' },
      { seq: 2, enqueuedAt: Date.now(), tradeId: 'V2', body: JSON.stringify({ tradeId: 'V2', type: 'NEW' }) },
      { seq: 3, enqueuedAt: Date.now(), tradeId: 'V1', body: canonicalTradeJson(good) },
      {
        seq: 4,
        enqueuedAt: Date.now(),
        tradeId: 'V9',
        body: canonicalTradeJson(makeTrade(ids, { type: 'NEW', id: 'V8' })),
      },
    ];
    const r = await applyBatch(db, batchOf(ids.pk, items), dl);
    expect(r).toMatchObject({ applied: 1, deadLettered: 3, lastSeq: 4 });
    const letters = await deadLetters(ids.pk);
    expect(letters.map((d) => [d.trade_id, d.reason_code])).toEqual([
      ['V0', 'invalid_payload'],
      ['V2', 'invalid_payload'],
      ['V9', 'invalid_payload'],
    ]);
    expect(letters[0]!.payload).toEqual({ raw: '{not json' });
    expect(letters[1]!.reason).toMatch(/accountId is required/);
    expect(letters[2]!.reason).toMatch(/its body is trade V8/);
  });

  test('halt policy commits the prefix, throws HaltPartitionError, and resumes past the committed prefix', async () => {
    const ids = freshPartition();
    const trades = [
      makeTrade(ids, { type: 'NEW', id: 'H1' }),
      makeTrade(ids, { type: 'NEW', id: 'H2' }),
      makeTrade(ids, { type: 'CANCEL', id: 'H3', ref: 'MISSING' }),
      makeTrade(ids, { type: 'NEW', id: 'H4' }),
    ];
    const items = queued(trades);
    const err = await rejection(applyBatch(db, batchOf(ids.pk, items), halt));
    expect(err).toBeInstanceOf(HaltPartitionError);
    expect((err as HaltPartitionError).reason).toEqual({
      code: 'unknown_ref',
      message: expect.stringContaining('MISSING'),
      tradeId: 'H3',
      seq: 3,
    });
    expect((await storedPosition(ids.pk))!.lastSeq).toBe(2);
    expect(await deadLetters(ids.pk)).toEqual([]);
    await expectMatchesFold(ids, trades.slice(0, 2));

    // The queue kept H3 at the head behind the un-acked prefix: a retry halts again, at the same trade.
    const again = await rejection(applyBatch(db, batchOf(ids.pk, items, 2), halt));
    expect((again as HaltPartitionError).reason).toMatchObject({ code: 'unknown_ref', seq: 3 });

    // An operator skips H3 (dead letter + last_seq), then resumes: H4 applies.
    expect(
      await skipTrade(db, {
        partitionKey: ids.pk,
        item: items[2]!,
        reasonCode: 'operator_skip',
        reason: 'skipped by ops',
      }),
    ).toBe('skipped');
    expect(
      await skipTrade(db, {
        partitionKey: ids.pk,
        item: items[2]!,
        reasonCode: 'operator_skip',
        reason: 'skipped by ops',
      }),
    ).toBe('already-consumed');
    const resumed = await applyBatch(db, batchOf(ids.pk, items.slice(3), 3), halt);
    expect(resumed).toMatchObject({ applied: 1, lastSeq: 4 });
    const p = await storedPosition(ids.pk);
    expect(p).toMatchObject({ lastSeq: 4, tradeCount: 3 });
    expect((await deadLetters(ids.pk)).map((d) => [d.trade_id, d.reason_code])).toEqual([
      ['H3', 'operator_skip'],
    ]);
  });

  test('halt policy with the bad trade first commits nothing but the lease', async () => {
    const ids = freshPartition();
    const items = queued([
      makeTrade(ids, { type: 'AMEND', id: 'F1', ref: 'NONE' }),
      makeTrade(ids, { type: 'NEW', id: 'F2' }),
    ]);
    const err = await rejection(applyBatch(db, batchOf(ids.pk, items, 7), halt));
    expect((err as HaltPartitionError).reason).toMatchObject({ code: 'unknown_ref', tradeId: 'F1', seq: 1 });
    expect(await storedPosition(ids.pk)).toMatchObject({
      lastSeq: 0,
      tradeCount: 0,
      digest: '',
      leaseEpoch: 7,
    });
  });
});

describe('duplicates past the dedup window', () => {
  test('the same tradeId with the same payload has no effect but consumes its seq', async () => {
    const ids = freshPartition();
    const t1 = makeTrade(ids, { type: 'NEW', id: 'U1', quantity: '10' });
    const t2 = makeTrade(ids, { type: 'NEW', id: 'U2', quantity: '20' });
    await applyBatch(db, batchOf(ids.pk, queued([t1, t2])), dl);
    const before = await storedPosition(ids.pk);
    // Redis forgot U1 (its done marker expired) and accepted it again as seq 3; U3 follows.
    const t3 = makeTrade(ids, { type: 'NEW', id: 'U3', quantity: '30' });
    const r = await applyBatch(db, batchOf(ids.pk, queued([t1, t3], 3)), dl);
    expect(r).toMatchObject({ applied: 1, duplicates: 1, deadLettered: 0, lastSeq: 4 });
    // The fold gives the same position: it refuses the repeated id and skips its seq.
    const fold = foldAll(ids, [
      { seq: 1, trade: t1 },
      { seq: 2, trade: t2 },
      { seq: 3, trade: t1 },
      { seq: 4, trade: t3 },
    ]);
    const after = await storedPosition(ids.pk);
    expect(after).toMatchObject({
      lastSeq: 4,
      tradeCount: before!.tradeCount + 1,
      boughtQuantity: '60',
      digest: fold.position.digest,
    });
    expect(await deadLetters(ids.pk)).toEqual([]);
    expect(
      await db
        .selectFrom('trades')
        .select(['trade_id', 'seq'])
        .where('partition_key', '=', ids.pk)
        .orderBy('seq')
        .execute(),
    ).toEqual([
      { trade_id: 'U1', seq: '1' },
      { trade_id: 'U2', seq: '2' },
      { trade_id: 'U3', seq: '4' },
    ]);
  });

  test('the same tradeId with another payload is dead-lettered as conflict (or halts under the halt policy)', async () => {
    const ids = freshPartition();
    const t1 = makeTrade(ids, { type: 'NEW', id: 'W1', quantity: '10' });
    await applyBatch(db, batchOf(ids.pk, queued([t1])), dl);
    const changed = makeTrade(ids, { type: 'NEW', id: 'W1', quantity: '11' });

    const err = await rejection(applyBatch(db, batchOf(ids.pk, queued([changed], 2)), halt));
    expect((err as HaltPartitionError).reason).toMatchObject({ code: 'conflict', tradeId: 'W1', seq: 2 });

    const r = await applyBatch(db, batchOf(ids.pk, queued([changed], 2)), dl);
    expect(r).toMatchObject({ applied: 0, deadLettered: 1, lastSeq: 2 });
    const [letter] = await deadLetters(ids.pk);
    expect(letter).toMatchObject({ trade_id: 'W1', seq: '2', reason_code: 'conflict' });
    expect(letter!.reason).toMatch(/already applied at seq 1/);
    expect(await storedPosition(ids.pk)).toMatchObject({ boughtQuantity: '10', tradeCount: 1, lastSeq: 2 });

    // Yet another payload under the same id is dead-lettered too (dead letters are keyed by queue position).
    const third = makeTrade(ids, { type: 'NEW', id: 'W1', quantity: '12' });
    expect(await applyBatch(db, batchOf(ids.pk, queued([third], 3)), dl)).toMatchObject({
      deadLettered: 1,
      lastSeq: 3,
    });
    expect((await deadLetters(ids.pk)).map((l) => [l.trade_id, l.seq, l.reason_code])).toEqual([
      ['W1', '2', 'conflict'],
      ['W1', '3', 'conflict'],
    ]);
    // The conflicting payload again is a duplicate of its dead letter.
    expect(await applyBatch(db, batchOf(ids.pk, queued([changed], 4)), dl)).toMatchObject({
      duplicates: 1,
      lastSeq: 4,
    });
  });

  test('a tradeId applied in another partition is a conflict', async () => {
    const a = freshPartition();
    const b = freshPartition();
    await applyBatch(db, batchOf(a.pk, queued([makeTrade(a, { type: 'NEW', id: 'X-SHARED' })])), dl);
    const r = await applyBatch(
      db,
      batchOf(b.pk, queued([makeTrade(b, { type: 'NEW', id: 'X-SHARED' })])),
      dl,
    );
    expect(r.deadLetters).toEqual([
      expect.objectContaining({ code: 'conflict', reason: expect.stringContaining(a.pk) }),
    ]);
  });

  test('an AMEND cannot reach a NEW trade of another partition', async () => {
    const a = freshPartition();
    const b = freshPartition();
    await applyBatch(db, batchOf(a.pk, queued([makeTrade(a, { type: 'NEW', id: 'Y-A' })])), dl);
    const r = await applyBatch(
      db,
      batchOf(b.pk, queued([makeTrade(b, { type: 'AMEND', id: 'Y-B', ref: 'Y-A' })])),
      dl,
    );
    expect(r.deadLetters).toEqual([expect.objectContaining({ code: 'unknown_ref' })]);
    expect(await storedPosition(a.pk)).toMatchObject({ boughtQuantity: '100', tradeCount: 1 });
  });
});
