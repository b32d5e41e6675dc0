import { createHash } from 'node:crypto';

import {
  canonicalTradeJson,
  FIELD_ERROR_CODES,
  type FieldError,
  payloadHash,
  type Trade,
  TRADE_FIELDS,
  validateTrade,
} from '../../../src/domain/trade';

const NEW_TRADE = {
  tradeId: 'T-2026-0001',
  type: 'NEW',
  accountId: 'ACC_001',
  bookId: 'EQ.DESK/1',
  securityId: 'US0378331005',
  side: 'BUY',
  quantity: '100',
  price: '12.5',
  currency: 'USD',
  tradeTime: '2026-11-22T10:15:30.123+01:00',
} as const;

const AMEND_TRADE = {
  ...NEW_TRADE,
  tradeId: 'T-2026-0002',
  type: 'AMEND',
  refTradeId: 'T-2026-0001',
} as const;

const CANCEL_TRADE = {
  tradeId: 'T-2026-0003',
  type: 'CANCEL',
  refTradeId: 'T-2026-0001',
  accountId: 'ACC_001',
  bookId: 'EQ.DESK/1',
  securityId: 'US0378331005',
  tradeTime: '2026-11-22T10:20:00Z',
} as const;

function errorsOf(input: unknown): FieldError[] {
  const result = validateTrade(input);
  if (result.ok) throw new Error(`expected validation to fail for ${JSON.stringify(input)}`);
  return result.errors;
}

function accepted(input: unknown): Trade {
  const result = validateTrade(input);
  if (!result.ok) throw new Error(`expected a valid trade, got ${JSON.stringify(result.errors, null, 2)}`);
  return result.trade;
}

const MISSING = Symbol('missing');
type Bad = unknown;

/** For each field, bad values and the code each must produce (MISSING deletes the field). */
const BAD_VALUES: Record<string, Array<[Bad, string]>> = {
  tradeId: [
    [MISSING, 'required'],
    [42, 'type'],
    [null, 'type'],
    ['', 'pattern'],
    ['T|1', 'pattern'],
    ['T/1', 'pattern'],
    ['_T1', 'pattern'],
    ['-T1', 'pattern'],
    ['T 1', 'pattern'],
    ['T'.repeat(65), 'pattern'],
  ],
  type: [
    [MISSING, 'required'],
    [1, 'type'],
    ['new', 'enum'],
    ['MODIFY', 'enum'],
    ['', 'enum'],
  ],
  accountId: [
    [MISSING, 'required'],
    [7, 'type'],
    [['ACC'], 'type'],
    ['', 'pattern'],
    ['ACC 1', 'pattern'],
    ['ACC|1', 'pattern'],
    ['ACC%1', 'pattern'],
    ['A'.repeat(65), 'pattern'],
  ],
  bookId: [
    [MISSING, 'required'],
    [true, 'type'],
    ['', 'pattern'],
    ['bø', 'pattern'],
    ['B'.repeat(65), 'pattern'],
  ],
  securityId: [
    [MISSING, 'required'],
    [{}, 'type'],
    ['', 'pattern'],
    ['US 0378', 'pattern'],
    ['S'.repeat(65), 'pattern'],
  ],
  side: [
    [MISSING, 'required'],
    [0, 'type'],
    ['buy', 'enum'],
    ['LONG', 'enum'],
  ],
  quantity: [
    [MISSING, 'required'],
    [100, 'type'],
    [null, 'type'],
    ['1e5', 'decimal'],
    ['+1', 'decimal'],
    ['.5', 'decimal'],
    ['1.', 'decimal'],
    [' 1', 'decimal'],
    ['01', 'decimal'],
    ['abc', 'decimal'],
    ['1234567890123456789', 'decimal'],
    ['0.0000000000001', 'decimal'],
    ['0', 'range'],
    ['0.000', 'range'],
    ['-3', 'range'],
  ],
  price: [
    [MISSING, 'required'],
    [12.5, 'type'],
    ['12,5', 'decimal'],
    ['1e2', 'decimal'],
    ['-0.01', 'range'],
  ],
  currency: [
    [MISSING, 'required'],
    [840, 'type'],
    ['usd', 'enum'],
    ['US', 'enum'],
    ['ABC', 'enum'],
    ['HRK', 'enum'],
    ['XXX', 'enum'],
  ],
  tradeTime: [
    [MISSING, 'required'],
    [1764000000000, 'type'],
    ['2026-11-22T10:15:30', 'pattern'],
    ['2026-11-22', 'pattern'],
    ['2026-11-22 10:15:30Z', 'pattern'],
    ['2026-11-22T10:15Z', 'pattern'],
    ['2026-11-22T10:15:30+0100', 'pattern'],
    ['22/11/2026 10:15', 'pattern'],
    ['2026-02-30T10:00:00Z', 'range'],
    ['2025-02-29T10:00:00Z', 'range'],
    ['2026-13-01T10:00:00Z', 'range'],
    ['2026-11-22T24:00:00Z', 'range'],
    ['2026-11-22T10:60:00Z', 'range'],
    ['2026-12-31T23:59:60Z', 'range'],
    ['2026-11-22T10:00:00+15:00', 'range'],
    ['2026-11-22T10:00:00+01:60', 'range'],
  ],
};

describe('trade validation: every field rejects bad values with a message that names the field', () => {
  const cases = Object.entries(BAD_VALUES).flatMap(([field, values]) =>
    values.map(([value, code]) => ({ field, value, code })),
  );

  it.each(cases)('$field = $value gives $code', ({ field, value, code }) => {
    const input: Record<string, unknown> = { ...NEW_TRADE };
    if (value === MISSING) delete input[field];
    else input[field] = value;
    const errors = errorsOf(input);
    expect(errors).toHaveLength(1);
    const [error] = errors as [FieldError];
    expect(error.path).toBe(field);
    expect(error.code).toBe(code);
    expect(error.message).toContain(field);
    if (value !== MISSING) expect(error.message).toContain('got ');
  });

  it('covers every field of the schema', () => {
    const untested = TRADE_FIELDS.filter((f) => f !== 'refTradeId' && !(f in BAD_VALUES));
    expect(untested).toEqual([]);
  });

  it('uses only catalogued error codes', () => {
    for (const { code } of cases) expect(FIELD_ERROR_CODES).toContain(code);
  });

  it.each([
    [MISSING, 'required'],
    [5, 'type'],
    ['R|1', 'pattern'],
    ['R#1', 'pattern'],
    ['T-2026-0002', 'self_reference'],
  ])('refTradeId = %p on an AMEND gives %s', (value, code) => {
    const input: Record<string, unknown> = { ...AMEND_TRADE };
    if (value === MISSING) delete input.refTradeId;
    else input.refTradeId = value;
    const errors = errorsOf(input);
    expect(errors).toEqual([expect.objectContaining({ path: 'refTradeId', code })]);
    expect(errors[0]?.message).toContain('refTradeId');
  });
});

describe('trade validation: messages say what was received and what is expected', () => {
  it('explains a non-positive quantity', () => {
    expect(errorsOf({ ...NEW_TRADE, quantity: '-3' })).toEqual([
      {
        path: 'quantity',
        code: 'range',
        message: 'quantity must be a decimal string > 0 such as "100" or "12.5"; got "-3"',
      },
    ]);
  });

  it('asks for numbers as strings', () => {
    const [error] = errorsOf({ ...NEW_TRADE, price: 12.5 });
    expect(error?.message).toBe(
      'price must be a decimal string >= 0 such as "101.25" or "0", as a JSON string so that no precision is lost; got number 12.5',
    );
  });

  it('gives the reason a decimal is malformed', () => {
    const [error] = errorsOf({ ...NEW_TRADE, quantity: '1e5' });
    expect(error?.message).toMatch(/got "1e5" \(no exponent notation/);
  });

  it('truncates long received values to about 40 characters', () => {
    const [error] = errorsOf({ ...NEW_TRADE, securityId: 'x'.repeat(500) });
    expect(error?.message).toContain(`got "${'x'.repeat(40)}…"`);
    expect(error?.message).not.toContain('x'.repeat(41));
    expect(error?.message).toContain('500 characters, at most 64 allowed');
  });

  it('points at the offending character of an identifier', () => {
    const [error] = errorsOf({ ...NEW_TRADE, tradeId: 'T1|2' });
    expect(error?.message).toContain('character "|" at position 2 is not allowed');
  });

  it('hints at upper case for enums and currencies', () => {
    expect(errorsOf({ ...NEW_TRADE, side: 'sell' })[0]?.message).toContain('"SELL"');
    expect(errorsOf({ ...NEW_TRADE, currency: 'eur' })[0]?.message).toContain('"EUR"');
  });

  it('says which calendar rule a date breaks', () => {
    expect(errorsOf({ ...NEW_TRADE, tradeTime: '2026-02-30T10:00:00Z' })[0]?.message).toContain(
      'February 2026 has 28 days',
    );
    expect(errorsOf({ ...NEW_TRADE, tradeTime: '2026-11-22T10:15:30' })[0]?.message).toContain('no offset');
  });

  it('suggests the right spelling of a mistyped field', () => {
    expect(errorsOf({ ...NEW_TRADE, TradeID: 'x' })).toEqual([
      {
        path: 'TradeID',
        code: 'unknown_field',
        message: 'unknown field "TradeID": remove it (did you mean "tradeId"?)',
      },
    ]);
  });
});

describe('trade validation: the whole payload', () => {
  it('reports every problem together, in field order, then unknown fields', () => {
    const errors = errorsOf({
      tradeId: 'bad id',
      type: 'NEW',
      refTradeId: 'X1',
      accountId: '',
      securityId: 'S1',
      side: 'HOLD',
      quantity: '0',
      price: '-1',
      currency: 'usd',
      tradeTime: '2026-02-30T00:00:00Z',
      venue: 'XNYS',
      comment: 'hi',
    });
    expect(errors.map((e) => [e.path, e.code])).toEqual([
      ['tradeId', 'pattern'],
      ['refTradeId', 'forbidden'],
      ['accountId', 'pattern'],
      ['bookId', 'required'],
      ['side', 'enum'],
      ['quantity', 'range'],
      ['price', 'range'],
      ['currency', 'enum'],
      ['tradeTime', 'range'],
      ['venue', 'unknown_field'],
      ['comment', 'unknown_field'],
    ]);
  });

  it.each([null, 'trade', 42, true, [NEW_TRADE], undefined, new Date(0)])(
    'rejects a non-object body (%p) with one error at path ""',
    (input) => {
      const errors = errorsOf(input);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ path: '', code: 'type' });
      expect(errors[0]?.message).toMatch(/must be a JSON object/);
    },
  );

  it('rejects an empty object with one "required" error per always-required field', () => {
    expect(errorsOf({}).map((e) => [e.path, e.code])).toEqual([
      ['tradeId', 'required'],
      ['type', 'required'],
      ['accountId', 'required'],
      ['bookId', 'required'],
      ['securityId', 'required'],
      ['tradeTime', 'required'],
    ]);
  });

  it('ignores inherited properties (prototype pollution cannot supply a field)', () => {
    const { side: _side, ...withoutSide } = NEW_TRADE;
    Object.defineProperty(Object.prototype, 'side', { value: 'BUY', configurable: true, enumerable: false });
    try {
      expect(errorsOf(withoutSide)).toEqual([expect.objectContaining({ path: 'side', code: 'required' })]);
    } finally {
      delete (Object.prototype as Record<string, unknown>).side;
    }
  });

  it('treats an undefined property as absent (JSON has no undefined)', () => {
    expect(accepted({ ...CANCEL_TRADE, side: undefined })).not.toHaveProperty('side');
  });

  it('treats a JSON "__proto__" key as an unknown field, without touching the prototype', () => {
    const input: unknown = JSON.parse(JSON.stringify(NEW_TRADE).replace('{', '{"__proto__":{"x":1},'));
    expect(errorsOf(input)).toEqual([expect.objectContaining({ path: '__proto__', code: 'unknown_field' })]);
  });
});

describe('trade validation: type-dependent fields', () => {
  it.each(['AMEND', 'CANCEL'])('rejects %s without refTradeId', (type) => {
    const input: Record<string, unknown> = { ...(type === 'AMEND' ? AMEND_TRADE : CANCEL_TRADE) };
    delete input.refTradeId;
    const errors = errorsOf(input);
    expect(errors).toEqual([expect.objectContaining({ path: 'refTradeId', code: 'required' })]);
    expect(errors[0]?.message).toContain(`refTradeId is required for ${type}`);
  });

  it('rejects NEW with refTradeId', () => {
    const errors = errorsOf({ ...NEW_TRADE, refTradeId: 'T-0' });
    expect(errors).toEqual([expect.objectContaining({ path: 'refTradeId', code: 'forbidden' })]);
    expect(errors[0]?.message).toContain('refTradeId must be omitted for NEW');
  });

  it.each(['side', 'quantity', 'price', 'currency'])('requires %s on AMEND', (field) => {
    const input: Record<string, unknown> = { ...AMEND_TRADE };
    delete input[field];
    expect(errorsOf(input)).toEqual([expect.objectContaining({ path: field, code: 'required' })]);
  });

  it('accepts a CANCEL without side, quantity, price and currency', () => {
    const trade = accepted(CANCEL_TRADE);
    expect(trade).toEqual(CANCEL_TRADE);
  });

  it('still validates side, quantity, price and currency on a CANCEL when present', () => {
    const errors = errorsOf({ ...CANCEL_TRADE, side: 'X', quantity: '0', price: 'free', currency: 'EURO' });
    expect(errors.map((e) => [e.path, e.code])).toEqual([
      ['side', 'enum'],
      ['quantity', 'range'],
      ['price', 'decimal'],
      ['currency', 'enum'],
    ]);
  });

  it('with an invalid type, validates present fields but does not demand type-dependent ones', () => {
    expect(
      errorsOf({ ...CANCEL_TRADE, type: 'CORRECT', refTradeId: 'R|1' }).map((e) => [e.path, e.code]),
    ).toEqual([
      ['type', 'enum'],
      ['refTradeId', 'pattern'],
    ]);
  });
});

describe('trade validation: valid trades are accepted and normalized', () => {
  it('accepts a NEW trade and keeps its fields in canonical order', () => {
    const trade = accepted(NEW_TRADE);
    expect(trade).toEqual(NEW_TRADE);
    expect(Object.keys(trade)).toEqual(TRADE_FIELDS.filter((f) => f !== 'refTradeId'));
    expect(trade).not.toHaveProperty('partitionKey');
  });

  it('accepts an AMEND trade', () => {
    expect(accepted(AMEND_TRADE)).toEqual(AMEND_TRADE);
  });

  it('writes decimals canonically', () => {
    const trade = accepted({ ...NEW_TRADE, quantity: '1.50', price: '0.000' });
    expect(trade).toMatchObject({ quantity: '1.5', price: '0' });
    expect(accepted({ ...NEW_TRADE, quantity: '100.000000000000' }).quantity).toBe('100');
  });

  it.each([
    ['tradeId', 'A'],
    ['tradeId', `a${'b'.repeat(63)}`],
    ['tradeId', '0.1:2-3'],
    ['tradeId', 'T_1'],
    ['accountId', '_'],
    ['accountId', 'a._:/@#+-b'],
    ['bookId', 'B'.repeat(64)],
    ['currency', 'JPY'],
    ['currency', 'XCG'],
    ['price', '0'],
    ['quantity', '999999999999999999.999999999999'],
    ['tradeTime', '2028-02-29T23:59:59Z'],
    ['tradeTime', '2026-11-22T10:15:30.123456789-05:30'],
    ['tradeTime', '2026-11-22T00:00:00+14:00'],
    ['tradeTime', '2026-11-22T00:00:00-12:00'],
    ['tradeTime', '2000-02-29T00:00:00Z'],
  ])('accepts %s = %j', (field, value) => {
    expect(accepted({ ...NEW_TRADE, [field]: value })).toMatchObject({ [field]: value });
  });

  it.each([['1900-02-29T00:00:00Z'], ['2100-02-29T00:00:00Z']])('knows %s is not a leap day', (tradeTime) => {
    expect(errorsOf({ ...NEW_TRADE, tradeTime })).toEqual([
      expect.objectContaining({ path: 'tradeTime', code: 'range' }),
    ]);
  });
});

describe('canonical JSON and payload hash', () => {
  it('writes fields in a fixed order and omits absent optional fields', () => {
    const shuffled = Object.fromEntries(Object.entries(NEW_TRADE).reverse());
    expect(canonicalTradeJson(accepted(shuffled))).toBe(
      '{"tradeId":"T-2026-0001","type":"NEW","accountId":"ACC_001","bookId":"EQ.DESK/1","securityId":"US0378331005",' +
        '"side":"BUY","quantity":"100","price":"12.5","currency":"USD","tradeTime":"2026-11-22T10:15:30.123+01:00"}',
    );
    expect(canonicalTradeJson(accepted(CANCEL_TRADE))).toBe(
      '{"tradeId":"T-2026-0003","type":"CANCEL","refTradeId":"T-2026-0001","accountId":"ACC_001","bookId":"EQ.DESK/1",' +
        '"securityId":"US0378331005","tradeTime":"2026-11-22T10:20:00Z"}',
    );
  });

  it('never leaks extra properties such as a partition key', () => {
    const trade = accepted(NEW_TRADE);
    const withExtra: Trade = Object.assign({}, trade, { partitionKey: 'ACC%5F001_EQ.DESK/1_US0378331005' });
    expect(canonicalTradeJson(withExtra)).toBe(canonicalTradeJson(trade));
  });

  it('is sha256 hex of the canonical JSON', () => {
    const trade = accepted(NEW_TRADE);
    const expected = createHash('sha256').update(canonicalTradeJson(trade)).digest('hex');
    expect(payloadHash(trade)).toBe(expected);
    expect(payloadHash(trade)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('is the same for "1.50" and "1.5" (an idempotent repeat)', () => {
    const a = accepted({ ...NEW_TRADE, quantity: '1.50', price: '12.50' });
    const b = accepted({ ...NEW_TRADE, quantity: '1.5', price: '12.5' });
    expect(payloadHash(a)).toBe(payloadHash(b));
  });

  it.each([
    ['quantity', '101'],
    ['price', '12.51'],
    ['side', 'SELL'],
    ['currency', 'EUR'],
    ['tradeTime', '2026-11-22T09:15:30.123Z'],
  ])('differs when %s differs (a conflicting reuse of the tradeId)', (field, value) => {
    expect(payloadHash(accepted({ ...NEW_TRADE, [field]: value }))).not.toBe(
      payloadHash(accepted(NEW_TRADE)),
    );
  });
});
