/**
 * The trade schema, its validation, and its canonical form.
 *
 * Validation happens once, at the producer, and reports every problem at
 * once with the field, the value received and the fix, because the reader is
 * a client developer who should be able to correct a payload in one round
 * trip. The canonical JSON is what the queue stores and what the payload
 * hash is computed over, so an idempotent retry can be told from a conflict.
 */
import { sha256Hex } from './hash';

import { isTradeCurrencyCode } from './currencies';
import { sign, toString as decimalToString, tryParseDecimal } from './decimal';

/** Allowed values of `side`. */
export const SIDES = ['BUY', 'SELL'] as const;
/** Whether the trade adds to the bought or the sold totals. */
export type Side = (typeof SIDES)[number];

/** Allowed values of `type`. */
export const TRADE_TYPES = ['NEW', 'AMEND', 'CANCEL'] as const;
/** NEW books a trade; AMEND and CANCEL change a booked NEW trade, named by `refTradeId`. */
export type TradeType = (typeof TRADE_TYPES)[number];

/**
 * `tradeId` and `refTradeId`. Never a `|`, which the queue uses to join
 * ids; the small alphabet keeps ids safe in Redis keys, URLs and logs
 * without escaping.
 */
export const TRADE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

/**
 * `accountId`, `bookId` and `securityId`. Underscores are allowed because
 * real identifiers use them; {@link partitionKey} escapes them.
 */
export const PARTITION_ID_PATTERN = /^[A-Za-z0-9._:/@#+_-]{1,64}$/;

/** Maximum length of every identifier field. */
export const ID_MAX_LENGTH = 64;

/**
 * The fields of a trade in canonical order: the order of
 * {@link canonicalTradeJson}, of error reports, and of documentation.
 */
export const TRADE_FIELDS = [
  'tradeId',
  'type',
  'refTradeId',
  'accountId',
  'bookId',
  'securityId',
  'side',
  'quantity',
  'price',
  'currency',
  'tradeTime',
] as const;
/** A field name of {@link Trade}. */
export type TradeField = (typeof TRADE_FIELDS)[number];

interface TradeCommon {
  readonly tradeId: string;
  readonly accountId: string;
  readonly bookId: string;
  readonly securityId: string;
  /** ISO 8601 with an explicit offset, kept exactly as received: the offset says where the trade happened. */
  readonly tradeTime: string;
}

/** Books a trade. Decimals are canonical strings (see `toString` in decimal.ts). */
export interface NewTrade extends TradeCommon {
  readonly type: 'NEW';
  readonly refTradeId?: undefined;
  readonly side: Side;
  /** Canonical decimal string, > 0. */
  readonly quantity: string;
  /** Canonical decimal string, >= 0. */
  readonly price: string;
  readonly currency: string;
}

/** Replaces the side, quantity and price of the NEW trade `refTradeId`. */
export interface AmendTrade extends TradeCommon {
  readonly type: 'AMEND';
  readonly refTradeId: string;
  readonly side: Side;
  readonly quantity: string;
  readonly price: string;
  readonly currency: string;
}

/**
 * Cancels the NEW trade `refTradeId`. Side, quantity, price and currency are
 * optional and informational: the fold removes what the referenced trade
 * contributes, not what the cancel says.
 */
export interface CancelTrade extends TradeCommon {
  readonly type: 'CANCEL';
  readonly refTradeId: string;
  readonly side?: Side;
  readonly quantity?: string;
  readonly price?: string;
  readonly currency?: string;
}

/** A validated, normalized trade message. Discriminated on `type`. */
export type Trade = NewTrade | AmendTrade | CancelTrade;

/**
 * Stable error codes, part of the API contract (clients may switch on them):
 * - `type`: wrong JSON type (or the body is not an object, path '')
 * - `required`: a required field is missing
 * - `forbidden`: a field that this trade type must not carry
 * - `unknown_field`: a field the schema does not know (often a typo)
 * - `pattern`: a string in the wrong format or of the wrong length
 * - `enum`: not one of the allowed values
 * - `decimal`: not a decimal string in the accepted grammar or precision
 * - `range`: well-formed but out of range (quantity <= 0, a 30th of February)
 * - `self_reference`: refTradeId equals tradeId
 */
export const FIELD_ERROR_CODES = [
  'type',
  'required',
  'forbidden',
  'unknown_field',
  'pattern',
  'enum',
  'decimal',
  'range',
  'self_reference',
] as const;
/** One of {@link FIELD_ERROR_CODES}. */
export type FieldErrorCode = (typeof FIELD_ERROR_CODES)[number];

/** One problem in a payload: where (`path`, a field name or '' for the whole body), which kind, and how to fix it. */
export interface FieldError {
  readonly path: string;
  readonly code: FieldErrorCode;
  readonly message: string;
}

/** Outcome of {@link validateTrade}; never throws, so callers cannot forget a try/catch. */
export type TradeValidationResult = { ok: true; trade: Trade } | { ok: false; errors: FieldError[] };

const SHOWN_VALUE_MAX = 40;

function truncate(text: string): string {
  if (text.length <= SHOWN_VALUE_MAX) return text;
  let cut = text.slice(0, SHOWN_VALUE_MAX);
  // Do not leave half a surrogate pair, which would print as U+FFFD.
  const last = cut.charCodeAt(cut.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut = cut.slice(0, -1);
  return `${cut}…`;
}

/** How a received value is quoted in messages: short, and with its JSON type when that is the problem. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return JSON.stringify(truncate(value));
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return `${typeof value} ${truncate(String(value))}`;
  }
  if (Array.isArray(value)) return `an array of ${value.length} item${value.length === 1 ? '' : 's'}`;
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}

const TRADE_ID_EXPECTED =
  '1 to 64 characters: a letter or digit, then letters, digits, ".", "_", ":" or "-" (no "|"), such as "T-2026-000123"';
const PARTITION_ID_EXAMPLES = {
  accountId: 'ACC-001',
  bookId: 'EQ_DESK.1',
  securityId: 'US0378331005',
} as const;
type PartitionIdField = keyof typeof PARTITION_ID_EXAMPLES;

const PARTITION_ID_EXPECTED = Object.fromEntries(
  Object.entries(PARTITION_ID_EXAMPLES).map(([field, example]) => [
    field,
    `1 to 64 characters from letters, digits and . _ : / @ # + -, such as "${example}"`,
  ]),
) as Record<PartitionIdField, string>;

function partitionIdExpected(field: PartitionIdField): string {
  return PARTITION_ID_EXPECTED[field];
}
const QUANTITY_EXPECTED = 'a decimal string > 0 such as "100" or "12.5"';
const PRICE_EXPECTED = 'a decimal string >= 0 such as "101.25" or "0"';
const CURRENCY_EXPECTED = 'an active ISO 4217 currency code in upper case, such as "USD", "EUR" or "JPY"';
const TRADE_TIME_EXPECTED =
  'an ISO 8601 date-time with an explicit offset ("Z" or +hh:mm/-hh:mm), such as "2026-11-22T10:15:30.123+01:00"';

const enumTexts = new WeakMap<readonly string[], string>();

/** '"A", "B" or "C"', built once per list of values (they are module constants). */
function enumExpected(values: readonly string[]): string {
  let text = enumTexts.get(values);
  if (text === undefined) {
    const quoted = values.map((v) => JSON.stringify(v));
    text =
      quoted.length === 2
        ? `${quoted[0]} or ${quoted[1]}`
        : `${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)}`;
    enumTexts.set(values, text);
  }
  return text;
}

/** Collects errors in field order so that one response lists them all. */
class Collector {
  readonly errors: FieldError[] = [];

  add(path: string, code: FieldErrorCode, message: string): void {
    this.errors.push({ path, code, message });
  }

  /** The common "X must be Y; got Z" shape. */
  expect(path: string, code: FieldErrorCode, expected: string, value: unknown, detail?: string): void {
    const suffix = detail ? ` (${detail})` : '';
    this.add(path, code, `${path} must be ${expected}; got ${describeValue(value)}${suffix}`);
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Own, defined property: `undefined` counts as absent (JSON has no undefined), inherited ones never count. */
function present(input: Record<string, unknown>, field: string): boolean {
  return Object.hasOwn(input, field) && input[field] !== undefined;
}

function checkString(c: Collector, field: string, value: unknown, expected: string): value is string {
  if (typeof value === 'string') return true;
  c.expect(field, 'type', `a string: ${expected}`, value);
  return false;
}

function checkTradeId(c: Collector, field: string, value: unknown): string | undefined {
  if (!checkString(c, field, value, TRADE_ID_EXPECTED)) return undefined;
  if (TRADE_ID_PATTERN.test(value)) return value;
  c.expect(field, 'pattern', TRADE_ID_EXPECTED, value, idProblem(value, /[^A-Za-z0-9._:-]/u));
  return undefined;
}

function checkPartitionId(c: Collector, field: PartitionIdField, value: unknown): string | undefined {
  const expected = partitionIdExpected(field);
  if (!checkString(c, field, value, expected)) return undefined;
  if (PARTITION_ID_PATTERN.test(value)) return value;
  c.expect(field, 'pattern', expected, value, idProblem(value, /[^A-Za-z0-9._:/@#+_-]/u));
  return undefined;
}

/** Names the first thing wrong with an identifier, so the client need not diff it against the pattern. */
function idProblem(value: string, badChar: RegExp): string {
  if (value.length === 0) return 'empty';
  if (value.length > ID_MAX_LENGTH) return `${value.length} characters, at most ${ID_MAX_LENGTH} allowed`;
  const bad = badChar.exec(value);
  if (bad) return `character ${JSON.stringify(bad[0])} at position ${bad.index} is not allowed`;
  return `must start with a letter or digit`;
}

function checkEnum<T extends string>(
  c: Collector,
  field: string,
  value: unknown,
  values: readonly T[],
): T | undefined {
  const expected = enumExpected(values);
  if (!checkString(c, field, value, expected)) return undefined;
  if ((values as readonly string[]).includes(value)) return value as T;
  const hint = (values as readonly string[]).includes(value.trim().toUpperCase())
    ? `values are upper case, without spaces: ${JSON.stringify(value.trim().toUpperCase())}`
    : undefined;
  c.expect(field, 'enum', expected, value, hint);
  return undefined;
}

function checkDecimal(
  c: Collector,
  field: string,
  value: unknown,
  expected: string,
  allowZero: boolean,
): string | undefined {
  if (typeof value !== 'string') {
    c.expect(field, 'type', `${expected}, as a JSON string so that no precision is lost`, value);
    return undefined;
  }
  const parsed = tryParseDecimal(value);
  if (!parsed.ok) {
    c.expect(field, 'decimal', expected, value, parsed.reason);
    return undefined;
  }
  const s = sign(parsed.value);
  if (s < 0 || (s === 0 && !allowZero)) {
    c.expect(field, 'range', expected, value);
    return undefined;
  }
  return decimalToString(parsed.value);
}

function checkCurrency(c: Collector, value: unknown): string | undefined {
  if (!checkString(c, 'currency', value, CURRENCY_EXPECTED)) return undefined;
  if (isTradeCurrencyCode(value)) return value;
  let hint: string | undefined;
  if (isTradeCurrencyCode(value.trim().toUpperCase())) {
    hint = `codes are upper case, without spaces: ${JSON.stringify(value.trim().toUpperCase())}`;
  } else if (value === 'XXX' || value === 'XTS') {
    hint = `${value} names no currency a trade can settle in`;
  } else if (!/^[A-Z]{3}$/.test(value)) {
    hint = 'three upper-case letters';
  } else {
    hint = 'not an active ISO 4217 code';
  }
  c.expect('currency', 'enum', CURRENCY_EXPECTED, value, hint);
  return undefined;
}

const TRADE_TIME_SYNTAX =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:Z|([+-])(\d{2}):(\d{2}))$/;

const MONTH_NAMES = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/**
 * Checks the calendar by hand rather than with `Date.parse`, which (in V8)
 * silently rolls 2026-02-30 over to March 2 and accepts non-ISO formats.
 * Offsets beyond ±14:00 do not exist anywhere; leap seconds are rejected
 * because PostgreSQL silently moves them to the next minute.
 */
function checkTradeTime(c: Collector, value: unknown): string | undefined {
  if (!checkString(c, 'tradeTime', value, TRADE_TIME_EXPECTED)) return undefined;
  const m = TRADE_TIME_SYNTAX.exec(value);
  if (!m) {
    const noOffset = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$/.test(value);
    const detail = noOffset
      ? 'no offset: add "Z" for UTC or the local offset such as "+01:00"'
      : /^\d{4}-\d{2}-\d{2}$/.test(value)
        ? 'a date alone is not enough: add the time and the offset'
        : /^\d{4}-\d{2}-\d{2}[ t]/.test(value)
          ? 'separate the date and the time with an upper-case "T"'
          : undefined;
    c.expect('tradeTime', 'pattern', TRADE_TIME_EXPECTED, value, detail);
    return undefined;
  }
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const offsetHours = m[8] === undefined ? 0 : Number(m[8]);
  const offsetMinutes = m[9] === undefined ? 0 : Number(m[9]);
  let problem: string | undefined;
  if (year < 1) problem = 'year 0000 does not exist';
  else if (month < 1 || month > 12) problem = `month ${m[2]} does not exist`;
  else if (day < 1 || day > daysInMonth(year, month)) {
    problem = `${MONTH_NAMES[month - 1]} ${year} has ${daysInMonth(year, month)} days`;
  } else if (hour > 23) problem = `hour ${m[4]} does not exist; use 00 to 23`;
  else if (minute > 59) problem = `minute ${m[5]} does not exist`;
  else if (second > 59) problem = `second ${m[6]} does not exist (leap seconds are not accepted)`;
  else if (offsetMinutes > 59) problem = `offset minute ${m[9]} does not exist`;
  else if (offsetHours * 60 + offsetMinutes > 14 * 60) problem = 'offsets range from -14:00 to +14:00';
  if (problem) {
    c.expect('tradeTime', 'range', `a real calendar date and time: ${TRADE_TIME_EXPECTED}`, value, problem);
    return undefined;
  }
  return value;
}

const KNOWN_FIELDS: ReadonlySet<string> = new Set(TRADE_FIELDS);

function unknownFieldMessage(field: string): string {
  const near = TRADE_FIELDS.find((f) => f.toLowerCase() === field.trim().toLowerCase());
  const hint = near ? `did you mean "${near}"?` : `the accepted fields are ${TRADE_FIELDS.join(', ')}`;
  return `unknown field ${describeValue(field)}: remove it (${hint})`;
}

const PRICED_TYPES: readonly TradeType[] = ['NEW', 'AMEND'];

/**
 * Validates and normalizes one trade payload (already JSON-parsed).
 *
 * Reports every problem, in field order, then unknown fields. The returned
 * trade has canonical decimals, so "1.50" and "1.5" hash the same.
 * Fields whose requiredness depends on `type` are only checked for presence
 * when `type` itself is valid, so a bad type gives one error, not five.
 */
export function validateTrade(input: unknown): TradeValidationResult {
  if (!isPlainObject(input)) {
    return {
      ok: false,
      errors: [
        {
          path: '',
          code: 'type',
          message: `a trade must be a JSON object with the fields ${TRADE_FIELDS.join(', ')}; got ${describeValue(input)}`,
        },
      ],
    };
  }
  const c = new Collector();
  const has = (field: TradeField): boolean => present(input, field);

  const required = (field: TradeField, expected: string, context = ''): void => {
    c.add(field, 'required', `${field} is required${context}: ${expected}`);
  };

  let tradeId: string | undefined;
  if (has('tradeId')) tradeId = checkTradeId(c, 'tradeId', input.tradeId);
  else required('tradeId', TRADE_ID_EXPECTED);

  let type: TradeType | undefined;
  if (has('type')) type = checkEnum(c, 'type', input.type, TRADE_TYPES);
  else required('type', enumExpected(TRADE_TYPES));

  let refTradeId: string | undefined;
  if (type === 'NEW' && has('refTradeId')) {
    c.add(
      'refTradeId',
      'forbidden',
      `refTradeId must be omitted for NEW trades (only AMEND and CANCEL reference another trade); got ${describeValue(input.refTradeId)}`,
    );
  } else if (has('refTradeId')) {
    refTradeId = checkTradeId(c, 'refTradeId', input.refTradeId);
    if (refTradeId !== undefined && tradeId !== undefined && refTradeId === tradeId) {
      c.add(
        'refTradeId',
        'self_reference',
        `refTradeId must be the tradeId of the NEW trade to ${type === 'CANCEL' ? 'cancel' : 'amend'}, not this message's own tradeId; got ${describeValue(refTradeId)}`,
      );
      refTradeId = undefined;
    }
  } else if (type === 'AMEND' || type === 'CANCEL') {
    required(
      'refTradeId',
      `the tradeId of the NEW trade to ${type === 'CANCEL' ? 'cancel' : 'amend'}`,
      ` for ${type}`,
    );
  }

  const partitionIds = {} as Record<'accountId' | 'bookId' | 'securityId', string | undefined>;
  for (const field of ['accountId', 'bookId', 'securityId'] as const) {
    if (has(field)) partitionIds[field] = checkPartitionId(c, field, input[field]);
    else required(field, partitionIdExpected(field));
  }

  // Requiredness of these four depends on the type; when the type is unknown, only check what is there.
  const pricedRequired = type !== undefined && PRICED_TYPES.includes(type);
  const requiredContext = ' for NEW and AMEND trades';

  let side: Side | undefined;
  if (has('side')) side = checkEnum(c, 'side', input.side, SIDES);
  else if (pricedRequired) required('side', enumExpected(SIDES), requiredContext);

  let quantity: string | undefined;
  if (has('quantity')) quantity = checkDecimal(c, 'quantity', input.quantity, QUANTITY_EXPECTED, false);
  else if (pricedRequired) required('quantity', QUANTITY_EXPECTED, requiredContext);

  let price: string | undefined;
  if (has('price')) price = checkDecimal(c, 'price', input.price, PRICE_EXPECTED, true);
  else if (pricedRequired) required('price', PRICE_EXPECTED, requiredContext);

  let currency: string | undefined;
  if (has('currency')) currency = checkCurrency(c, input.currency);
  else if (pricedRequired) required('currency', CURRENCY_EXPECTED, requiredContext);

  let tradeTime: string | undefined;
  if (has('tradeTime')) tradeTime = checkTradeTime(c, input.tradeTime);
  else required('tradeTime', TRADE_TIME_EXPECTED);

  for (const key of Object.keys(input)) {
    if (!KNOWN_FIELDS.has(key)) c.add(key, 'unknown_field', unknownFieldMessage(key));
  }

  if (c.errors.length > 0) return { ok: false, errors: c.errors };

  // With no errors every field the type requires is present and valid. Build the
  // object in TRADE_FIELDS order so that logs and JSON dumps read like the schema.
  const values: Partial<Record<TradeField, string>> = {
    tradeId,
    type,
    refTradeId,
    ...partitionIds,
    side,
    quantity,
    price,
    currency,
    tradeTime,
  };
  const ordered: Record<string, string> = {};
  for (const field of TRADE_FIELDS) {
    const value = values[field];
    if (value !== undefined) ordered[field] = value;
  }
  if (type === undefined) throw new Error('unreachable: a trade without a valid type passed validation');
  const trade = ordered as unknown as Trade;
  return { ok: true, trade };
}

/**
 * Deterministic JSON of a trade: keys in {@link TRADE_FIELDS} order, absent
 * optional fields omitted, nothing else included (an extra property on the
 * object, such as a partition key, never leaks into the stored payload).
 * Expects a trade from {@link validateTrade}, whose decimals are canonical.
 */
export function canonicalTradeJson(trade: Trade): string {
  const record = trade as unknown as Record<string, unknown>;
  const ordered: Record<string, unknown> = {};
  for (const field of TRADE_FIELDS) {
    const value = record[field];
    if (value !== undefined) ordered[field] = value;
  }
  return JSON.stringify(ordered);
}

/**
 * SHA-256 (hex) of {@link canonicalTradeJson}: equal for an idempotent
 * repeat of the same trade, different for a conflicting reuse of a tradeId.
 */
export function payloadHash(trade: Trade): string {
  return sha256Hex(canonicalTradeJson(trade));
}
