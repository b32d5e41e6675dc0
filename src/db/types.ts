/**
 * kysely table types. They describe the schema created by src/db/migrations and
 * must change together with a new migration (never by editing an old one).
 *
 * Representation (see client.ts for the pg type parsers):
 * - numeric: string, exactly as PostgreSQL stores it; quantities and prices never
 *   become JavaScript numbers.
 * - bigint (int8): string as returned by pg. Repositories convert seq, counts and
 *   epochs to `number` with `toSafeNumber`, which throws above 2^53 - 1
 *   (9 007 199 254 740 991), far beyond any per-partition sequence.
 * - timestamptz: Date on select; a Date or an ISO 8601 string (kept exactly,
 *   microseconds included) on insert.
 * - jsonb: the parsed object on select; a JSON string on insert (pg would turn a
 *   JavaScript array into a PostgreSQL array, so repositories stringify).
 */
import type { ColumnType, Insertable, Selectable, Updateable } from 'kysely';

type Int8Input = string | number | bigint;

/** numeric NOT NULL DEFAULT 0 */
export type DecimalDefault0 = ColumnType<string, string | undefined, string>;
/** numeric NULL */
export type NullableDecimal = ColumnType<string | null, string | null | undefined, string | null>;
/** bigint NOT NULL */
export type Int8 = ColumnType<string, Int8Input, Int8Input>;
/** bigint NOT NULL DEFAULT 0 */
export type Int8Default0 = ColumnType<string, Int8Input | undefined, Int8Input>;
/** timestamptz NOT NULL */
export type Timestamptz = ColumnType<Date, Date | string, Date | string>;
/** timestamptz NOT NULL DEFAULT now() */
export type TimestamptzDefaultNow = ColumnType<Date, Date | string | undefined, Date | string>;
/** timestamptz NULL */
export type NullableTimestamptz = ColumnType<
  Date | null,
  Date | string | null | undefined,
  Date | string | null
>;

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };
/** jsonb NOT NULL holding an object; written as a JSON string. */
export type JsonbObject = ColumnType<JsonObject, string, string>;

export type TradeType = 'NEW' | 'AMEND' | 'CANCEL';
export type TradeSide = 'BUY' | 'SELL';
/**
 * `live` / `cancelled`: a NEW trade, and whether a later CANCEL removed it.
 * `amend` / `cancel`: the row of an AMEND or CANCEL itself.
 */
export type TradeStatus = 'live' | 'cancelled' | 'amend' | 'cancel';

export interface PositionsTable {
  /** `{accountId}_{bookId}_{securityId}`, built by src/domain. */
  partition_key: string;
  account_id: string;
  book_id: string;
  security_id: string;
  currency: string | null;
  net_quantity: DecimalDefault0;
  bought_quantity: DecimalDefault0;
  sold_quantity: DecimalDefault0;
  bought_notional: DecimalDefault0;
  sold_notional: DecimalDefault0;
  trade_count: Int8Default0;
  /** seq of the last applied trade: the PostgreSQL fence (only seq > last_seq applies). */
  last_seq: Int8Default0;
  /** d_n = sha256(d_{n-1} + ":" + tradeId), d_0 = ''. */
  digest: ColumnType<string, string | undefined, string>;
  /** Fencing epoch of the lease under which the row was last written. */
  lease_epoch: Int8Default0;
  updated_at: TimestamptzDefaultNow;
}

export interface TradesTable {
  trade_id: string;
  partition_key: string;
  seq: Int8;
  type: TradeType;
  ref_trade_id: string | null;
  account_id: string;
  book_id: string;
  security_id: string;
  side: TradeSide | null;
  quantity: NullableDecimal;
  price: NullableDecimal;
  currency: string | null;
  trade_time: Timestamptz;
  /** The canonical trade as enqueued. */
  payload: JsonbObject;
  payload_hash: string;
  enqueued_at: Timestamptz;
  applied_at: TimestamptzDefaultNow;
  /** Effective terms of a NEW trade after AMENDs; NULL on AMEND and CANCEL rows. */
  eff_side: TradeSide | null;
  eff_quantity: NullableDecimal;
  eff_price: NullableDecimal;
  eff_currency: string | null;
  status: TradeStatus;
}

export interface DeadLettersTable {
  trade_id: string;
  partition_key: string;
  seq: Int8;
  payload: JsonbObject;
  payload_hash: string;
  /** A stable code from the error catalogue. */
  reason_code: string;
  reason: string;
  created_at: TimestamptzDefaultNow;
  replayed_at: NullableTimestamptz;
}

/** One replay of a dead letter (0002). */
export interface DeadLetterReplaysTable {
  id: ColumnType<string, never, never>;
  partition_key: string;
  seq: Int8;
  trade_id: string;
  requested_by: string;
  requested_at: TimestamptzDefaultNow;
  /** The seq the replay got at the tail of its partition; NULL until the queue accepted it. */
  enqueued_seq: ColumnType<string | null, Int8Input | null | undefined, Int8Input | null>;
}

export interface Database {
  positions: PositionsTable;
  trades: TradesTable;
  dead_letters: DeadLettersTable;
  dead_letter_replays: DeadLetterReplaysTable;
}

export type PositionRow = Selectable<PositionsTable>;
export type NewPositionRow = Insertable<PositionsTable>;
export type PositionUpdate = Updateable<PositionsTable>;
export type TradeRow = Selectable<TradesTable>;
export type NewTradeRow = Insertable<TradesTable>;
export type TradeUpdate = Updateable<TradesTable>;
export type DeadLetterRow = Selectable<DeadLettersTable>;
export type NewDeadLetterRow = Insertable<DeadLettersTable>;
