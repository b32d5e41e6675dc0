/**
 * Exact decimal arithmetic on BigInt.
 *
 * Quantities and prices travel as decimal strings end to end; a JavaScript
 * number would silently round `0.1 + 0.2` or a 19-digit notional, and a
 * rounded position is a wrong position. Every operation here is exact.
 */

/**
 * An exact decimal: the value is `units / 10^scale`.
 *
 * Values built by this module are normalized (no trailing zero in `units`
 * when `scale > 0`), so two equal values are also structurally equal; the
 * functions still accept any non-negative integer `scale`, so a hand-built
 * `{ units: 1500n, scale: 3 }` compares equal to `1.5`.
 */
export interface Decimal {
  readonly units: bigint;
  readonly scale: number;
}

/** The limits of a decimal accepted from API input (see {@link parseDecimal}). */
export const DECIMAL_MAX_INTEGER_DIGITS = 18;
/** @see DECIMAL_MAX_INTEGER_DIGITS */
export const DECIMAL_MAX_FRACTION_DIGITS = 12;

/**
 * A sanity cap on what {@link parseDecimalLoose} reads, so that a corrupt
 * value cannot make BigInt parsing arbitrarily slow. Far above anything this
 * system writes (a product of two API decimals has 36 + 24 digits).
 */
export const DECIMAL_LOOSE_MAX_LENGTH = 1000;

const STRICT_SYNTAX = /^-?(0|[1-9]\d*)(\.\d+)?$/;
const LOOSE_SYNTAX = /^-?\d+(\.\d+)?$/;

/** Thrown by {@link parseDecimal} and {@link parseDecimalLoose}; `reason` is safe to show a client. */
export class DecimalFormatError extends Error {
  constructor(
    readonly input: string,
    readonly reason: string,
  ) {
    super(
      `invalid decimal ${JSON.stringify(input.length > 40 ? `${input.slice(0, 40)}…` : input)}: ${reason}`,
    );
    this.name = 'DecimalFormatError';
  }
}

/** Result of {@link tryParseDecimal}: validators need the reason without paying for an exception. */
export type DecimalParseResult = { ok: true; value: Decimal } | { ok: false; reason: string };

const TEN = 10n;

function pow10(n: number): bigint {
  return TEN ** BigInt(n);
}

function assertScale(scale: number): void {
  if (!Number.isSafeInteger(scale) || scale < 0) {
    throw new RangeError(`decimal scale must be a non-negative safe integer; got ${scale}`);
  }
}

/**
 * Builds a normalized decimal from `units / 10^scale`.
 * Normalizing here keeps structural equality meaningful for callers and tests.
 */
export function decimal(units: bigint, scale = 0): Decimal {
  assertScale(scale);
  let u = units;
  let s = scale;
  if (u === 0n) return { units: 0n, scale: 0 };
  while (s > 0 && u % TEN === 0n) {
    u /= TEN;
    s -= 1;
  }
  return { units: u, scale: s };
}

/** Zero, shared so callers need not build it. */
export const ZERO: Decimal = Object.freeze({ units: 0n, scale: 0 });

function fromDigits(text: string): Decimal {
  const negative = text.startsWith('-');
  const body = negative ? text.slice(1) : text;
  const dot = body.indexOf('.');
  const intPart = dot === -1 ? body : body.slice(0, dot);
  const fracPart = dot === -1 ? '' : body.slice(dot + 1);
  const magnitude = BigInt(intPart + fracPart);
  return decimal(negative ? -magnitude : magnitude, fracPart.length);
}

/**
 * Parses API input strictly, returning the reason instead of throwing.
 *
 * Strict means one spelling per number family: no exponent, no `+`, no
 * leading zeros, no bare dot, no whitespace, and at most 18 integer and 12
 * fraction digits, so that every accepted value fits PostgreSQL
 * `numeric(30,12)` and a product fits `numeric(60,24)`.
 * Trailing fraction zeros ("1.50") are accepted; the value is normalized.
 */
export function tryParseDecimal(text: string): DecimalParseResult {
  if (typeof text !== 'string') return { ok: false, reason: 'expected a string' };
  if (!STRICT_SYNTAX.test(text)) {
    return { ok: false, reason: describeSyntaxProblem(text) };
  }
  const body = text.startsWith('-') ? text.slice(1) : text;
  const dot = body.indexOf('.');
  const intDigits = dot === -1 ? body.length : dot;
  const fracDigits = dot === -1 ? 0 : body.length - dot - 1;
  if (intDigits > DECIMAL_MAX_INTEGER_DIGITS) {
    return {
      ok: false,
      reason: `at most ${DECIMAL_MAX_INTEGER_DIGITS} digits before the decimal point (got ${intDigits})`,
    };
  }
  if (fracDigits > DECIMAL_MAX_FRACTION_DIGITS) {
    return {
      ok: false,
      reason: `at most ${DECIMAL_MAX_FRACTION_DIGITS} digits after the decimal point (got ${fracDigits})`,
    };
  }
  return { ok: true, value: fromDigits(text) };
}

function describeSyntaxProblem(text: string): string {
  if (text === '') return 'empty string';
  if (text.trim() !== text) return 'no leading or trailing whitespace';
  if (/[eE]/.test(text)) return 'no exponent notation; write the digits out';
  if (text.startsWith('+')) return 'no "+" sign';
  if (/^-?\./.test(text)) return 'a digit before the decimal point, e.g. "0.5"';
  if (/\.$/.test(text)) return 'a digit after the decimal point, or no decimal point';
  if (/^-?0\d/.test(text)) return 'no leading zeros';
  if (text.includes(',')) return 'a "." as the decimal point and no thousands separators';
  return 'digits with an optional "-" and one optional "." between digits';
}

/** Parses API input strictly (see {@link tryParseDecimal}); throws {@link DecimalFormatError}. */
export function parseDecimal(text: string): Decimal {
  const result = tryParseDecimal(text);
  if (!result.ok) throw new DecimalFormatError(String(text), result.reason);
  return result.value;
}

/**
 * Parses a decimal this system wrote itself, e.g. a PostgreSQL `numeric`
 * read back as "12.5000", or a notional with 24 fraction digits.
 *
 * Only the digit limits are lifted (and leading zeros tolerated); the
 * grammar stays plain digits, so "1e5" or "NaN" still throw. Never use it
 * on client input: the strict limits are what keep stored values in range.
 */
export function parseDecimalLoose(text: string): Decimal {
  if (typeof text !== 'string') throw new DecimalFormatError(String(text), 'expected a string');
  if (text.length > DECIMAL_LOOSE_MAX_LENGTH) {
    throw new DecimalFormatError(text, `longer than ${DECIMAL_LOOSE_MAX_LENGTH} characters`);
  }
  if (!LOOSE_SYNTAX.test(text)) throw new DecimalFormatError(text, describeSyntaxProblem(text));
  return fromDigits(text);
}

function align(a: Decimal, b: Decimal): [bigint, bigint, number] {
  assertScale(a.scale);
  assertScale(b.scale);
  if (a.scale === b.scale) return [a.units, b.units, a.scale];
  if (a.scale > b.scale) return [a.units, b.units * pow10(a.scale - b.scale), a.scale];
  return [a.units * pow10(b.scale - a.scale), b.units, b.scale];
}

/** Exact sum. */
export function add(a: Decimal, b: Decimal): Decimal {
  const [x, y, scale] = align(a, b);
  return decimal(x + y, scale);
}

/** Exact difference `a - b`. */
export function sub(a: Decimal, b: Decimal): Decimal {
  const [x, y, scale] = align(a, b);
  return decimal(x - y, scale);
}

/** Exact product; the scale is the sum of the scales, so nothing is rounded. */
export function mul(a: Decimal, b: Decimal): Decimal {
  assertScale(a.scale);
  assertScale(b.scale);
  return decimal(a.units * b.units, a.scale + b.scale);
}

/** Negation. */
export function neg(a: Decimal): Decimal {
  return decimal(-a.units, a.scale);
}

/** True for zero at any scale (`0`, `0.000`). */
export function isZero(a: Decimal): boolean {
  return a.units === 0n;
}

/** -1, 0 or 1: the sign, for range checks such as "quantity > 0". */
export function sign(a: Decimal): -1 | 0 | 1 {
  return a.units === 0n ? 0 : a.units < 0n ? -1 : 1;
}

/** Total order: -1 if `a < b`, 0 if equal in value (whatever the scales), 1 if `a > b`. */
export function cmp(a: Decimal, b: Decimal): -1 | 0 | 1 {
  const [x, y] = align(a, b);
  return x === y ? 0 : x < y ? -1 : 1;
}

/**
 * The canonical spelling: no trailing fraction zeros, no trailing dot, "0"
 * for zero and never "-0". Equal values always print the same, which is what
 * makes payload hashes and stored positions comparable.
 */
export function toString(a: Decimal): string {
  assertScale(a.scale);
  const normalized = decimal(a.units, a.scale);
  const negative = normalized.units < 0n;
  const digits = (negative ? -normalized.units : normalized.units).toString();
  if (normalized.scale === 0) return (negative ? '-' : '') + digits;
  const padded = digits.padStart(normalized.scale + 1, '0');
  const cut = padded.length - normalized.scale;
  return `${negative ? '-' : ''}${padded.slice(0, cut)}.${padded.slice(cut)}`;
}

/**
 * Canonicalizes a decimal string this system wrote (loose grammar), e.g. to
 * turn PostgreSQL's "12.5000" back into "12.5".
 */
export function canonicalDecimalString(text: string): string {
  return toString(parseDecimalLoose(text));
}
