/**
 * Queries only: every function takes the Kysely instance or a transaction it runs
 * in, and opens nothing. Records are camelCase; numerics stay decimal strings;
 * bigint counters become numbers through toSafeNumber (which throws beyond 2^53 - 1).
 */
import type { Kysely, Transaction } from 'kysely';
import type {
  Database,
  DeadLetterRow,
  JsonObject,
  PositionRow,
  TradeRow,
  TradeSide,
  TradeStatus,
  TradeType,
} from './types';

/** A Kysely instance or a transaction of one. */
export type Executor = Kysely<Database> | Transaction<Database>;

/**
 * An int8 value as a JavaScript number. seq, trade_count, last_seq and lease_epoch
 * stay far below 2^53 in practice; this makes the assumption checked rather than silent.
 */
export function toSafeNumber(value: string | number | bigint, column: string): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isSafeInteger(n)) {
    throw new RangeError(`${column}=${String(value)} is not a safe integer (beyond 2^53 - 1)`);
  }
  return n;
}

export interface TradeRecord {
  readonly tradeId: string;
  readonly partitionKey: string;
  readonly seq: number;
  readonly type: TradeType;
  readonly refTradeId: string | null;
  readonly accountId: string;
  readonly bookId: string;
  readonly securityId: string;
  readonly side: TradeSide | null;
  readonly quantity: string | null;
  readonly price: string | null;
  readonly currency: string | null;
  readonly tradeTime: Date;
  /** The canonical trade as enqueued. */
  readonly payload: JsonObject;
  readonly payloadHash: string;
  readonly enqueuedAt: Date;
  readonly appliedAt: Date;
  readonly effSide: TradeSide | null;
  readonly effQuantity: string | null;
  readonly effPrice: string | null;
  readonly effCurrency: string | null;
  readonly status: TradeStatus;
}

export interface NewTradeRecord extends Omit<
  TradeRecord,
  'tradeTime' | 'enqueuedAt' | 'appliedAt' | 'seq' | 'payload'
> {
  /** The trade as received; a string is taken as JSON already serialized (e.g. the canonical body from the queue). */
  readonly payload: JsonObject | string;
  readonly seq: number | string;
  /** An ISO 8601 string is stored exactly (microseconds, any offset); a Date to the millisecond. */
  readonly tradeTime: Date | string;
  readonly enqueuedAt: Date | string;
  /** @default now() */
  readonly appliedAt?: Date | string;
}

export interface PositionRecord {
  readonly partitionKey: string;
  readonly accountId: string;
  readonly bookId: string;
  readonly securityId: string;
  readonly currency: string | null;
  readonly netQuantity: string;
  readonly boughtQuantity: string;
  readonly soldQuantity: string;
  readonly boughtNotional: string;
  readonly soldNotional: string;
  readonly tradeCount: number;
  readonly lastSeq: number;
  readonly digest: string;
  readonly leaseEpoch: number;
  readonly updatedAt: Date;
}

export type NewPositionRecord = Omit<PositionRecord, 'updatedAt'>;

export function toTradeRecord(row: TradeRow): TradeRecord {
  return {
    tradeId: row.trade_id,
    partitionKey: row.partition_key,
    seq: toSafeNumber(row.seq, 'trades.seq'),
    type: row.type,
    refTradeId: row.ref_trade_id,
    accountId: row.account_id,
    bookId: row.book_id,
    securityId: row.security_id,
    side: row.side,
    quantity: row.quantity,
    price: row.price,
    currency: row.currency,
    tradeTime: row.trade_time,
    payload: row.payload,
    payloadHash: row.payload_hash,
    enqueuedAt: row.enqueued_at,
    appliedAt: row.applied_at,
    effSide: row.eff_side,
    effQuantity: row.eff_quantity,
    effPrice: row.eff_price,
    effCurrency: row.eff_currency,
    status: row.status,
  };
}

export function toPositionRecord(row: PositionRow): PositionRecord {
  return {
    partitionKey: row.partition_key,
    accountId: row.account_id,
    bookId: row.book_id,
    securityId: row.security_id,
    currency: row.currency,
    netQuantity: row.net_quantity,
    boughtQuantity: row.bought_quantity,
    soldQuantity: row.sold_quantity,
    boughtNotional: row.bought_notional,
    soldNotional: row.sold_notional,
    tradeCount: toSafeNumber(row.trade_count, 'positions.trade_count'),
    lastSeq: toSafeNumber(row.last_seq, 'positions.last_seq'),
    digest: row.digest,
    leaseEpoch: toSafeNumber(row.lease_epoch, 'positions.lease_epoch'),
    updatedAt: row.updated_at,
  };
}

/** Inserts an applied trade. A duplicate trade_id or (partition_key, seq) is an error (23505). */
export async function insertTrade(db: Executor, trade: NewTradeRecord): Promise<TradeRecord> {
  const row = await db
    .insertInto('trades')
    .values({
      trade_id: trade.tradeId,
      partition_key: trade.partitionKey,
      seq: String(trade.seq),
      type: trade.type,
      ref_trade_id: trade.refTradeId,
      account_id: trade.accountId,
      book_id: trade.bookId,
      security_id: trade.securityId,
      side: trade.side,
      quantity: trade.quantity,
      price: trade.price,
      currency: trade.currency,
      trade_time: trade.tradeTime,
      payload: typeof trade.payload === 'string' ? trade.payload : JSON.stringify(trade.payload),
      payload_hash: trade.payloadHash,
      enqueued_at: trade.enqueuedAt,
      ...(trade.appliedAt === undefined ? {} : { applied_at: trade.appliedAt }),
      eff_side: trade.effSide,
      eff_quantity: trade.effQuantity,
      eff_price: trade.effPrice,
      eff_currency: trade.effCurrency,
      status: trade.status,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toTradeRecord(row);
}

export async function getTrade(db: Executor, tradeId: string): Promise<TradeRecord | undefined> {
  const row = await db.selectFrom('trades').selectAll().where('trade_id', '=', tradeId).executeTakeFirst();
  return row && toTradeRecord(row);
}

export async function getPosition(db: Executor, partitionKey: string): Promise<PositionRecord | undefined> {
  const row = await db
    .selectFrom('positions')
    .selectAll()
    .where('partition_key', '=', partitionKey)
    .executeTakeFirst();
  return row && toPositionRecord(row);
}

/** The columns of a position that a fold changes, as written to the row. */
function positionState(position: NewPositionRecord) {
  return {
    currency: position.currency,
    net_quantity: position.netQuantity,
    bought_quantity: position.boughtQuantity,
    sold_quantity: position.soldQuantity,
    bought_notional: position.boughtNotional,
    sold_notional: position.soldNotional,
    trade_count: String(toSafeNumber(position.tradeCount, 'tradeCount')),
    last_seq: String(toSafeNumber(position.lastSeq, 'lastSeq')),
    digest: position.digest,
    lease_epoch: String(toSafeNumber(position.leaseEpoch, 'leaseEpoch')),
  };
}

/**
 * Inserts or replaces a position, but never moves it backwards: an existing row is
 * overwritten only when the new one has `lastSeq` and `leaseEpoch` at least as high.
 * Returns false (and changes nothing) when the write was fenced off.
 */
export async function upsertPosition(db: Executor, position: NewPositionRecord): Promise<boolean> {
  const values = {
    partition_key: position.partitionKey,
    account_id: position.accountId,
    book_id: position.bookId,
    security_id: position.securityId,
    ...positionState(position),
  };
  const result = await db
    .insertInto('positions')
    .values(values)
    .onConflict((oc) =>
      oc
        .column('partition_key')
        .doUpdateSet((eb) => ({
          account_id: eb.ref('excluded.account_id'),
          book_id: eb.ref('excluded.book_id'),
          security_id: eb.ref('excluded.security_id'),
          currency: eb.ref('excluded.currency'),
          net_quantity: eb.ref('excluded.net_quantity'),
          bought_quantity: eb.ref('excluded.bought_quantity'),
          sold_quantity: eb.ref('excluded.sold_quantity'),
          bought_notional: eb.ref('excluded.bought_notional'),
          sold_notional: eb.ref('excluded.sold_notional'),
          trade_count: eb.ref('excluded.trade_count'),
          last_seq: eb.ref('excluded.last_seq'),
          digest: eb.ref('excluded.digest'),
          lease_epoch: eb.ref('excluded.lease_epoch'),
          updated_at: eb.fn('now'),
        }))
        .where((eb) =>
          eb.and([
            eb('positions.last_seq', '<=', eb.ref('excluded.last_seq')),
            eb('positions.lease_epoch', '<=', eb.ref('excluded.lease_epoch')),
          ]),
        ),
    )
    .executeTakeFirst();
  return BigInt(result.numInsertedOrUpdatedRows ?? 0n) > 0n;
}

// ---------------------------------------------------------------------------
// Batch apply (used by src/worker/apply.ts). Set-based: each function is one
// statement, one round trip, whatever the number of rows, so that a batch of
// trades costs a fixed handful of round trips inside its transaction.

// Only this section builds raw SQL (ANY(array), UPDATE ... FROM unnest).
import { sql, type RawBuilder } from 'kysely';

/** The identifiers of a position row, as created before its first trade. */
export interface PositionIdentity {
  readonly partitionKey: string;
  readonly accountId: string;
  readonly bookId: string;
  readonly securityId: string;
}

/** Creates the empty position (zeros, last_seq 0, lease_epoch 0) unless it exists. */
export async function ensurePosition(db: Executor, ids: PositionIdentity): Promise<void> {
  await db
    .insertInto('positions')
    .values({
      partition_key: ids.partitionKey,
      account_id: ids.accountId,
      book_id: ids.bookId,
      security_id: ids.securityId,
    })
    .onConflict((oc) => oc.column('partition_key').doNothing())
    .execute();
}

/**
 * SELECT ... FOR UPDATE of one position: in a transaction, the row lock that
 * serializes every writer of the partition until commit or rollback.
 */
export async function lockPosition(db: Executor, partitionKey: string): Promise<PositionRecord | undefined> {
  const row = await db
    .selectFrom('positions')
    .selectAll()
    .where('partition_key', '=', partitionKey)
    .forUpdate()
    .executeTakeFirst();
  return row && toPositionRecord(row);
}

/** Creates the empty positions of `ids` that do not exist yet, in one statement (in key order). */
export async function ensurePositions(db: Executor, ids: readonly PositionIdentity[]): Promise<void> {
  if (ids.length === 0) return;
  const sorted = [...ids].sort((a, b) =>
    a.partitionKey < b.partitionKey ? -1 : a.partitionKey > b.partitionKey ? 1 : 0,
  );
  await db
    .insertInto('positions')
    .values(
      sorted.map((i) => ({
        partition_key: i.partitionKey,
        account_id: i.accountId,
        book_id: i.bookId,
        security_id: i.securityId,
      })),
    )
    .onConflict((oc) => oc.column('partition_key').doNothing())
    .execute();
}

const positionJson = (positions: readonly NewPositionRecord[]): string =>
  jsonRows(positions, (p) => ({
    partition_key: p.partitionKey,
    account_id: p.accountId,
    book_id: p.bookId,
    security_id: p.securityId,
    ...positionState(p),
  }));

/**
 * UPDATE ... FROM json_to_recordset(...) of every field of positions the
 * caller holds locked, with updated_at = now() (rows: positionJson).
 */
const updatePositionsSql = (rows: string) => sql`
    update positions as p
       set currency = v.currency, net_quantity = v.net_quantity, bought_quantity = v.bought_quantity,
           sold_quantity = v.sold_quantity, bought_notional = v.bought_notional, sold_notional = v.sold_notional,
           trade_count = v.trade_count, last_seq = v.last_seq, digest = v.digest, lease_epoch = v.lease_epoch,
           updated_at = now()
      from json_to_recordset(${rows}::json)
           as v(partition_key text, currency text, net_quantity numeric, bought_quantity numeric,
                sold_quantity numeric, bought_notional numeric, sold_notional numeric, trade_count int8,
                last_seq int8, digest text, lease_epoch int8)
     where p.partition_key = v.partition_key
    returning 1`;

/** INSERT ... SELECT FROM json_to_recordset(...) of new positions, ON CONFLICT DO NOTHING (rows: positionJson, in key order). */
const insertPositionsSql = (rows: string) => sql<{ partition_key: string }>`
    insert into positions (partition_key, account_id, book_id, security_id, currency, net_quantity,
                           bought_quantity, sold_quantity, bought_notional, sold_notional, trade_count,
                           last_seq, digest, lease_epoch)
    select v.partition_key, v.account_id, v.book_id, v.security_id, v.currency, v.net_quantity,
           v.bought_quantity, v.sold_quantity, v.bought_notional, v.sold_notional, v.trade_count,
           v.last_seq, v.digest, v.lease_epoch
      from json_to_recordset(${rows}::json)
           as v(partition_key text, account_id text, book_id text, security_id text, currency text,
                net_quantity numeric, bought_quantity numeric, sold_quantity numeric, bought_notional numeric,
                sold_notional numeric, trade_count int8, last_seq int8, digest text, lease_epoch int8)
    on conflict (partition_key) do nothing
    returning partition_key`;

/** Where a tradeId is already known to PostgreSQL: an applied trade or a dead letter. */
export interface KnownTradeId {
  readonly source: 'trade' | 'dead_letter';
  readonly tradeId: string;
  readonly partitionKey: string;
  readonly seq: number;
  readonly payloadHash: string;
  /** null for a dead letter. */
  readonly type: TradeType | null;
  /** The effective terms (NEW rows only; null otherwise). */
  readonly effSide: TradeSide | null;
  readonly effQuantity: string | null;
  readonly effPrice: string | null;
  readonly effCurrency: string | null;
  readonly status: TradeStatus | null;
  /**
   * A dead letter an operator replayed (replayed_at set): the replay is the
   * tradeId's next delivery, so this dead letter is not a prior of it. false for trades.
   */
  readonly replayed: boolean;
}

const isoOrNull = (v: Date | string | undefined): string | null =>
  v === undefined ? null : v instanceof Date ? v.toISOString() : v;

/**
 * Rows as ONE json parameter (`[{...},{...}]`), read back with
 * json_to_recordset: one JSON.stringify per row instead of one escaped array
 * element per column, and one parameter whatever the number of rows (a
 * multi-row VALUES list binds a parameter per cell and stops near 65,535).
 * `raw` splices already-serialized JSON values in as they are (a trade's
 * canonical body), so they are not parsed and serialized again.
 */
function jsonRows<T>(
  rows: readonly T[],
  fields: (row: T) => Record<string, unknown>,
  raw?: { key: string; value: (row: T) => string },
): string {
  const parts = rows.map((r) => {
    const text = JSON.stringify(fields(r));
    return raw ? `${text.slice(0, -1)},${JSON.stringify(raw.key)}:${raw.value(r)}}` : text;
  });
  return `[${parts.join(',')}]`;
}

const tradeJson = (trades: readonly NewTradeRecord[]): string =>
  jsonRows(
    trades,
    (t) => ({
      trade_id: t.tradeId,
      partition_key: t.partitionKey,
      seq: toSafeNumber(t.seq, 'seq'),
      type: t.type,
      ref_trade_id: t.refTradeId,
      account_id: t.accountId,
      book_id: t.bookId,
      security_id: t.securityId,
      side: t.side,
      quantity: t.quantity,
      price: t.price,
      currency: t.currency,
      trade_time: isoOrNull(t.tradeTime),
      payload_hash: t.payloadHash,
      enqueued_at: isoOrNull(t.enqueuedAt),
      applied_at: isoOrNull(t.appliedAt),
      eff_side: t.effSide,
      eff_quantity: t.effQuantity,
      eff_price: t.effPrice,
      eff_currency: t.effCurrency,
      status: t.status,
    }),
    { key: 'payload', value: (t) => (typeof t.payload === 'string' ? t.payload : JSON.stringify(t.payload)) },
  );

/** INSERT ... SELECT FROM json_to_recordset(...) of applied trades, ON CONFLICT (trade_id) DO NOTHING (rows: tradeJson). */
const insertTradesSql = (rows: string) => sql<{ trade_id: string }>`
    insert into trades (trade_id, partition_key, seq, type, ref_trade_id, account_id, book_id, security_id,
                        side, quantity, price, currency, trade_time, payload, payload_hash, enqueued_at,
                        applied_at, eff_side, eff_quantity, eff_price, eff_currency, status)
    select v.trade_id, v.partition_key, v.seq, v.type, v.ref_trade_id, v.account_id, v.book_id, v.security_id,
           v.side, v.quantity, v.price, v.currency, v.trade_time, v.payload, v.payload_hash, v.enqueued_at,
           coalesce(v.applied_at, now()), v.eff_side, v.eff_quantity, v.eff_price, v.eff_currency, v.status
      from json_to_recordset(${rows}::json)
           as v(trade_id text, partition_key text, seq int8, type text, ref_trade_id text, account_id text,
                book_id text, security_id text, side text, quantity numeric, price numeric, currency text,
                trade_time timestamptz, payload jsonb, payload_hash text, enqueued_at timestamptz,
                applied_at timestamptz, eff_side text, eff_quantity numeric, eff_price numeric,
                eff_currency text, status text)
    on conflict (trade_id) do nothing
    returning trade_id`;

/**
 * One INSERT ... SELECT FROM json_to_recordset(...) of applied trades (see
 * jsonRows). A trade_id already present is left alone (ON CONFLICT DO
 * NOTHING). Returns the ids actually inserted, so the caller can tell a lost
 * race from success.
 */
export async function insertTrades(db: Executor, trades: readonly NewTradeRecord[]): Promise<string[]> {
  if (trades.length === 0) return [];
  const rows = tradeJson(trades);
  const result = await insertTradesSql(rows).execute(db);
  return result.rows.map((r) => r.trade_id);
}

/** The new effective state of a NEW trade after an AMEND or CANCEL. */
export interface EffectiveStateUpdate {
  readonly tradeId: string;
  readonly effSide: TradeSide;
  readonly effQuantity: string;
  readonly effPrice: string;
  readonly effCurrency: string;
  readonly status: 'live' | 'cancelled';
}

type EffectiveUpdates = readonly (EffectiveStateUpdate & { readonly partitionKey: string })[];

/** UPDATE ... FROM unnest(...) of the effective state of NEW trades, each in its own partition. */
const updateEffectiveSql = (updates: EffectiveUpdates) => sql`
    update trades as t
       set eff_side = v.eff_side, eff_quantity = v.eff_quantity, eff_price = v.eff_price,
           eff_currency = v.eff_currency, status = v.status
      from unnest(${updates.map((u) => u.tradeId)}::text[], ${updates.map((u) => u.partitionKey)}::text[],
                  ${updates.map((u) => u.effSide)}::text[],
                  ${updates.map((u) => u.effQuantity)}::numeric[], ${updates.map((u) => u.effPrice)}::numeric[],
                  ${updates.map((u) => u.effCurrency)}::text[], ${updates.map((u) => u.status)}::text[])
           as v(trade_id, partition_key, eff_side, eff_quantity, eff_price, eff_currency, status)
     where t.trade_id = v.trade_id and t.partition_key = v.partition_key and t.type = 'NEW'
    returning 1`;

export interface NewDeadLetterRecord {
  readonly tradeId: string;
  readonly partitionKey: string;
  readonly seq: number;
  /** The trade as received; a body that is not a JSON object is wrapped as `{ raw: "<body>" }`. */
  readonly payload: JsonObject;
  readonly payloadHash: string;
  /** A stable code (see the worker's error catalogue). */
  readonly reasonCode: string;
  readonly reason: string;
}

const deadLetterJson = (letters: readonly NewDeadLetterRecord[]): string =>
  jsonRows(letters, (d) => ({
    trade_id: d.tradeId,
    partition_key: d.partitionKey,
    seq: toSafeNumber(d.seq, 'seq'),
    payload: d.payload,
    payload_hash: d.payloadHash,
    reason_code: d.reasonCode,
    reason: d.reason,
  }));

/** INSERT ... SELECT FROM json_to_recordset(...) of dead letters, ON CONFLICT DO NOTHING (rows: deadLetterJson). */
const insertDeadLettersSql = (rows: string) => sql`
    insert into dead_letters (trade_id, partition_key, seq, payload, payload_hash, reason_code, reason)
    select v.trade_id, v.partition_key, v.seq, v.payload, v.payload_hash, v.reason_code, v.reason
      from json_to_recordset(${rows}::json)
           as v(trade_id text, partition_key text, seq int8, payload jsonb, payload_hash text,
                reason_code text, reason text)
    on conflict do nothing
    returning 1`;

/**
 * One INSERT ... SELECT FROM json_to_recordset(...) of dead letters (see
 * jsonRows; ON CONFLICT DO NOTHING). Returns the number inserted.
 */
export async function insertDeadLetters(
  db: Executor,
  letters: readonly NewDeadLetterRecord[],
): Promise<number> {
  if (letters.length === 0) return 0;
  const result = await insertDeadLettersSql(deadLetterJson(letters)).execute(db);
  return result.rows.length;
}

/** In partition-key order: the order every transaction locks or creates positions in. */
const byKey = <T extends { readonly partitionKey: string }>(rows: readonly T[]): T[] =>
  [...rows].sort((a, b) => (a.partitionKey < b.partitionKey ? -1 : a.partitionKey > b.partitionKey ? 1 : 0));

/** What a group transaction holds once it has read (lockPositionsAndFindKnown). */
export interface LockedGroup {
  /** The positions that exist, locked FOR UPDATE, in key order. */
  readonly positions: PositionRecord[];
  /** Every trades row and dead_letters row carrying one of the tradeIds asked for. */
  readonly known: KnownTradeId[];
}

type PositionCells = [
  string,
  string,
  string,
  string,
  string | null,
  string,
  string,
  string,
  string,
  string,
  string,
  string,
  string,
  string,
  string,
  boolean,
];
/** A known tradeId's cells: a trade's, or a dead letter's with nulls for the trade-only ones. */
type KnownCells = [
  string,
  string,
  string,
  string,
  TradeType | null,
  TradeSide | null,
  string | null,
  string | null,
  string | null,
  TradeStatus | null,
  boolean,
];

/** The lookup half of lockPositionsAndFindKnown: rows 't' (trades) and 'd' (dead letters). */
const knownSql = (ids: readonly string[]) => sql`
    select 't' as k, json_build_array(trade_id, partition_key, seq::text, payload_hash, type, eff_side,
                                      eff_quantity::text, eff_price::text, eff_currency, status, false)::text as j
      from trades where trade_id = any(${ids}::text[])
    union all
    select 'd', json_build_array(trade_id, partition_key, seq::text, payload_hash, null, null, null, null, null,
                                 null, replayed_at is not null)::text
      from dead_letters where trade_id = any(${ids}::text[])`;

function knownTradeId(k: 't' | 'd', j: string): KnownTradeId {
  const c = JSON.parse(j) as KnownCells;
  return {
    source: k === 't' ? 'trade' : 'dead_letter',
    tradeId: c[0],
    partitionKey: c[1],
    seq: toSafeNumber(c[2], k === 't' ? 'trades.seq' : 'dead_letters.seq'),
    payloadHash: c[3],
    type: c[4],
    effSide: c[5],
    effQuantity: c[6],
    effPrice: c[7],
    effCurrency: c[8],
    status: c[9],
    replayed: c[10],
  };
}

/**
 * The group commit's read, in one round trip: locks the positions of
 * `partitionKeys` (FOR UPDATE, in key order: the lock that serializes every
 * writer of a partition until commit), and finds every trades row and
 * dead_letters row carrying one of `tradeIds`, in any partition (the caller
 * filters). Each row comes back as one JSON array of text cells, so that
 * numerics and int8 stay exact strings.
 *
 * READ COMMITTED subtlety: a lock that had to wait returns the row as the
 * other transaction committed it, but the lookups of the same statement read
 * the snapshot taken before the wait, without that transaction's trades. So
 * the statement also reads each row as of its snapshot: when a locked row is
 * a newer version than that (its xmin differs), the lookups are run again in
 * a second statement, whose snapshot is taken with every lock held.
 */
export async function lockPositionsAndFindKnown(
  db: Executor,
  partitionKeys: readonly string[],
  tradeIds: Iterable<string>,
): Promise<LockedGroup> {
  const ids = [...new Set(tradeIds)];
  const keys = [...partitionKeys];
  const result = await sql<{ k: 'p' | 't' | 'd'; j: string }>`
    with locked as (
      select *, xmin::text as version from positions where partition_key = any(${keys}::text[])
       order by partition_key for update
    ), snapshot as (
      select partition_key, xmin::text as version from positions where partition_key = any(${keys}::text[])
    )
    select 'p' as k,
           json_build_array(l.partition_key, account_id, book_id, security_id, currency, net_quantity::text,
                            bought_quantity::text, sold_quantity::text, bought_notional::text,
                            sold_notional::text, trade_count::text, last_seq::text, digest, lease_epoch::text,
                            updated_at, l.version is distinct from s.version)::text as j
      from locked l left join snapshot s on s.partition_key = l.partition_key
    union all
    ${knownSql(ids)}`.execute(db);
  let stale = false;
  const positions: PositionRecord[] = [];
  const known: KnownTradeId[] = [];
  for (const { k, j } of result.rows) {
    if (k === 'p') {
      const c = JSON.parse(j) as PositionCells;
      positions.push(
        toPositionRecord({
          partition_key: c[0],
          account_id: c[1],
          book_id: c[2],
          security_id: c[3],
          currency: c[4],
          net_quantity: c[5],
          bought_quantity: c[6],
          sold_quantity: c[7],
          bought_notional: c[8],
          sold_notional: c[9],
          trade_count: c[10],
          last_seq: c[11],
          digest: c[12],
          lease_epoch: c[13],
          updated_at: new Date(c[14]),
        }),
      );
      if (c[15]) stale = true;
    } else {
      known.push(knownTradeId(k, j));
    }
  }
  positions.sort((a, b) => (a.partitionKey < b.partitionKey ? -1 : a.partitionKey > b.partitionKey ? 1 : 0));
  if (!stale) return { positions, known };
  const again = await sql<{ k: 't' | 'd'; j: string }>`${knownSql(ids)}`.execute(db);
  return { positions, known: again.rows.map((r) => knownTradeId(r.k, r.j)) };
}

/** Everything a group transaction writes (writeGroup). */
export interface GroupWrites {
  /** Positions that did not exist when the group locked (inserted in key order, ON CONFLICT DO NOTHING). */
  readonly newPositions: readonly NewPositionRecord[];
  readonly trades: readonly NewTradeRecord[];
  readonly effectiveUpdates: EffectiveUpdates;
  readonly deadLetters: readonly NewDeadLetterRecord[];
  /** Positions the group holds locked, overwritten. */
  readonly positions: readonly NewPositionRecord[];
}

/** What writeGroup wrote: the caller compares it with what it asked and rolls back on a difference. */
export interface GroupWritten {
  /** The keys of newPositions actually inserted (one missing: another transaction created it meanwhile). */
  readonly newPositionKeys: string[];
  /** The tradeIds actually inserted (one missing: another transaction inserted it meanwhile). */
  readonly tradeIds: string[];
  readonly effectiveUpdates: number;
  readonly deadLetters: number;
  readonly positions: number;
}

/**
 * The group commit's writes, in ONE statement (one round trip): each part is
 * a data-modifying WITH query, and only the parts with rows are sent. New
 * positions come first. The parts see one snapshot and touch disjoint rows
 * (inserted trades are new rows; the effective-state updates are of rows
 * that existed; updated positions were locked, new ones were not there).
 */
export async function writeGroup(db: Executor, w: GroupWrites): Promise<GroupWritten> {
  const parts: RawBuilder<unknown>[] = [];
  const select: RawBuilder<unknown>[] = [];
  const none = { newPositionKeys: [], tradeIds: [], effectiveUpdates: 0, deadLetters: 0, positions: 0 };
  if (w.newPositions.length > 0) {
    parts.push(sql`np as (${insertPositionsSql(positionJson(byKey(w.newPositions)))})`);
    select.push(sql`(select coalesce(array_agg(partition_key), '{}') from np) as np`);
  }
  if (w.trades.length > 0) {
    parts.push(sql`tr as (${insertTradesSql(tradeJson(w.trades))})`);
    select.push(sql`(select coalesce(array_agg(trade_id), '{}') from tr) as tr`);
  }
  if (w.effectiveUpdates.length > 0) {
    parts.push(sql`ef as (${updateEffectiveSql(w.effectiveUpdates)})`);
    select.push(sql`(select count(*) from ef)::int as ef`);
  }
  if (w.deadLetters.length > 0) {
    parts.push(sql`dl as (${insertDeadLettersSql(deadLetterJson(w.deadLetters))})`);
    select.push(sql`(select count(*) from dl)::int as dl`);
  }
  if (w.positions.length > 0) {
    parts.push(sql`up as (${updatePositionsSql(positionJson(w.positions))})`);
    select.push(sql`(select count(*) from up)::int as up`);
  }
  if (parts.length === 0) return none;
  const result = await sql<{ np?: string[]; tr?: string[]; ef?: number; dl?: number; up?: number }>`
    with ${sql.join(parts)} select ${sql.join(select)}`.execute(db);
  const row = result.rows[0]!;
  return {
    newPositionKeys: row.np ?? [],
    tradeIds: row.tr ?? [],
    effectiveUpdates: row.ef ?? 0,
    deadLetters: row.dl ?? 0,
    positions: row.up ?? 0,
  };
}

/**
 * Overwrites every field of a position the caller holds locked (see
 * lockPosition), with updated_at = now(). Returns false if the row is missing.
 */
export async function writeLockedPosition(db: Executor, position: NewPositionRecord): Promise<boolean> {
  const result = await db
    .updateTable('positions')
    .set((eb) => ({ ...positionState(position), updated_at: eb.fn('now') }))
    .where('partition_key', '=', position.partitionKey)
    .executeTakeFirst();
  return BigInt(result.numUpdatedRows) > 0n;
}

// ---------------------------------------------------------------------------
// Dead letters, read side (used by the producer's GET /v1/trades/:tradeId).

export interface DeadLetterRecord {
  readonly tradeId: string;
  readonly partitionKey: string;
  readonly seq: number;
  /** The trade as received (or `{ raw: "<body>" }`, see NewDeadLetterRecord). */
  readonly payload: JsonObject;
  readonly payloadHash: string;
  readonly reasonCode: string;
  readonly reason: string;
  readonly createdAt: Date;
  readonly replayedAt: Date | null;
}

function toDeadLetterRecord(row: DeadLetterRow): DeadLetterRecord {
  return {
    tradeId: row.trade_id,
    partitionKey: row.partition_key,
    seq: toSafeNumber(row.seq, 'dead_letters.seq'),
    payload: row.payload,
    payloadHash: row.payload_hash,
    reasonCode: row.reason_code,
    reason: row.reason,
    createdAt: row.created_at,
    replayedAt: row.replayed_at,
  };
}

export async function getDeadLetter(db: Executor, tradeId: string): Promise<DeadLetterRecord | undefined> {
  const row = await db
    .selectFrom('dead_letters')
    .selectAll()
    .where('trade_id', '=', tradeId)
    // The first time it was dead-lettered (a tradeId can be, more than once).
    .orderBy('created_at')
    .orderBy('seq')
    .limit(1)
    .executeTakeFirst();
  return row && toDeadLetterRecord(row);
}

// ---------------------------------------------------------------------------
// Dead letters and their replays (used by the dashboard).

/** The latest replay of a dead letter. */
export interface DeadLetterReplayRecord {
  readonly id: string;
  readonly requestedBy: string;
  readonly requestedAt: Date;
  /** The seq the replay got in the queue; null until the queue accepted it. */
  readonly enqueuedSeq: number | null;
}

export interface DeadLetterWithReplay extends DeadLetterRecord {
  readonly lastReplay: DeadLetterReplayRecord | null;
  readonly replays: number;
}

export interface DeadLetterQuery {
  readonly partitionKey?: string;
  readonly tradeId?: string;
  /** @default 50 */
  readonly limit?: number;
}

/** The newest dead letters first, each with its latest replay. */
export async function listDeadLetters(
  db: Executor,
  q: DeadLetterQuery = {},
): Promise<DeadLetterWithReplay[]> {
  let query = db.selectFrom('dead_letters').selectAll();
  if (q.partitionKey !== undefined) query = query.where('partition_key', '=', q.partitionKey);
  if (q.tradeId !== undefined) query = query.where('trade_id', '=', q.tradeId);
  const rows = await query
    .orderBy('created_at', 'desc')
    .orderBy('partition_key')
    .orderBy('seq', 'desc')
    .limit(q.limit ?? 50)
    .execute();
  if (rows.length === 0) return [];
  const replays = await db
    .selectFrom('dead_letter_replays')
    .selectAll()
    .where((eb) =>
      eb.or(rows.map((r) => eb.and([eb('partition_key', '=', r.partition_key), eb('seq', '=', r.seq)]))),
    )
    .orderBy('id')
    .execute();
  const byLetter = new Map<string, { last: DeadLetterReplayRecord; count: number }>();
  for (const r of replays) {
    const key = `${r.partition_key}\u0000${r.seq}`;
    const count = (byLetter.get(key)?.count ?? 0) + 1;
    byLetter.set(key, { last: toReplayRecord(r), count });
  }
  return rows.map((row) => {
    const info = byLetter.get(`${row.partition_key}\u0000${row.seq}`);
    return { ...toDeadLetterRecord(row), lastReplay: info?.last ?? null, replays: info?.count ?? 0 };
  });
}

function toReplayRecord(r: {
  id: string;
  requested_by: string;
  requested_at: Date;
  enqueued_seq: string | null;
}): DeadLetterReplayRecord {
  return {
    id: String(r.id),
    requestedBy: r.requested_by,
    requestedAt: r.requested_at,
    enqueuedSeq:
      r.enqueued_seq === null ? null : toSafeNumber(r.enqueued_seq, 'dead_letter_replays.enqueued_seq'),
  };
}

/**
 * SELECT ... FOR UPDATE of one dead letter with its latest replay: in a
 * transaction, serializes the replays of that dead letter.
 */
export async function lockDeadLetter(
  db: Executor,
  partitionKey: string,
  seq: number,
): Promise<DeadLetterWithReplay | undefined> {
  const row = await db
    .selectFrom('dead_letters')
    .selectAll()
    .where('partition_key', '=', partitionKey)
    .where('seq', '=', String(seq))
    .forUpdate()
    .executeTakeFirst();
  if (!row) return undefined;
  const replays = await db
    .selectFrom('dead_letter_replays')
    .selectAll()
    .where('partition_key', '=', partitionKey)
    .where('seq', '=', String(seq))
    .orderBy('id', 'desc')
    .execute();
  return {
    ...toDeadLetterRecord(row),
    lastReplay: replays[0] ? toReplayRecord(replays[0]) : null,
    replays: replays.length,
  };
}

/**
 * Records a replay request: sets the dead letter's replayed_at (what the
 * worker reads) and adds a dead_letter_replays row. Returns the row's id.
 */
export async function recordReplayRequest(
  db: Executor,
  letter: { partitionKey: string; seq: number; tradeId: string },
  requestedBy: string,
): Promise<string> {
  await db
    .updateTable('dead_letters')
    .set((eb) => ({ replayed_at: eb.fn('now') }))
    .where('partition_key', '=', letter.partitionKey)
    .where('seq', '=', String(letter.seq))
    .execute();
  const row = await db
    .insertInto('dead_letter_replays')
    .values({
      partition_key: letter.partitionKey,
      seq: String(letter.seq),
      trade_id: letter.tradeId,
      requested_by: requestedBy,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return String(row.id);
}

/** Stores the seq a replay got at the tail of its partition. */
export async function recordReplayEnqueued(
  db: Executor,
  replayId: string,
  enqueuedSeq: number,
): Promise<void> {
  await db
    .updateTable('dead_letter_replays')
    .set({ enqueued_seq: String(toSafeNumber(enqueuedSeq, 'enqueuedSeq')) })
    .where('id', '=', replayId)
    .execute();
}

/** The most recently applied trades of a partition, newest first. */
export async function recentTrades(db: Executor, partitionKey: string, limit = 10): Promise<TradeRecord[]> {
  const rows = await db
    .selectFrom('trades')
    .selectAll()
    .where('partition_key', '=', partitionKey)
    .orderBy('seq', 'desc')
    .limit(limit)
    .execute();
  return rows.map(toTradeRecord);
}
