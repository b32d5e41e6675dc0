import fc from 'fast-check';

import {
  add,
  canonicalDecimalString,
  cmp,
  decimal,
  DecimalFormatError,
  isZero,
  mul,
  neg,
  parseDecimal,
  parseDecimalLoose,
  sign,
  sub,
  toString,
  tryParseDecimal,
  type Decimal,
} from '../../../src/domain/decimal';

const d = parseDecimalLoose;
const s = toString;

describe('strict parsing of API decimals', () => {
  it.each([
    ['0', '0'],
    ['-0', '0'],
    ['-0.000', '0'],
    ['1', '1'],
    ['1.50', '1.5'],
    ['12.5000', '12.5'],
    ['-3', '-3'],
    ['0.000000000001', '0.000000000001'],
    ['100.000000000000', '100'],
    ['999999999999999999.999999999999', '999999999999999999.999999999999'],
    ['-123456789012345678.123456789012', '-123456789012345678.123456789012'],
  ])('accepts %j and prints it canonically as %j', (input, canonical) => {
    expect(s(parseDecimal(input))).toBe(canonical);
  });

  it.each([
    ['1e5', /exponent/],
    ['1E5', /exponent/],
    ['+1', /"\+"/],
    ['.5', /digit before/],
    ['-.5', /digit before/],
    ['1.', /digit after/],
    [' 1', /whitespace/],
    ['1 ', /whitespace/],
    ['01', /leading zeros/],
    ['-01.5', /leading zeros/],
    ['', /empty/],
    ['1,5', /thousands/],
    ['--1', /digits/],
    ['-', /digits/],
    ['1.2.3', /digits/],
    ['NaN', /digits/],
    ['Infinity', /digits/],
    ['0x10', /digits/],
    ['١', /digits/],
    ['1234567890123456789', /at most 18 digits before/],
    ['0.1234567890123', /at most 12 digits after/],
  ])('rejects %j with a reason', (input, reason) => {
    const result = tryParseDecimal(input);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toMatch(reason);
    expect(() => parseDecimal(input)).toThrow(DecimalFormatError);
  });
});

describe('loose parsing of values we wrote ourselves', () => {
  it.each([
    ['12.5000', '12.5'],
    ['0.000', '0'],
    ['-0.5000', '-0.5'],
    // A product of two 12-fraction-digit numbers has 24 fraction digits.
    ['0.000000000000000000000001', '0.000000000000000000000001'],
    [
      '121932631137021794566377074494610576.619620178764585886175176',
      '121932631137021794566377074494610576.619620178764585886175176',
    ],
    ['007', '7'],
  ])('accepts %j as %j', (input, canonical) => {
    expect(s(parseDecimalLoose(input))).toBe(canonical);
    expect(canonicalDecimalString(input)).toBe(canonical);
  });

  it.each(['1e5', 'NaN', '', '.5', '1.', '+1', ' 1', '1'.repeat(1001)])('still rejects %j', (input) => {
    expect(() => parseDecimalLoose(input)).toThrow(DecimalFormatError);
  });
});

describe('exact arithmetic, checked against hand-computed values', () => {
  it.each([
    ['0.1', '0.2', '0.3'],
    ['1.5', '-1.5', '0'],
    ['999999999999999999.999999999999', '0.000000000001', '1000000000000000000'],
    ['123456789012345678.123456789012', '987654321098765432.987654321098', '1111111110111111111.11111111011'],
    ['-0.000000000001', '-0.000000000001', '-0.000000000002'],
  ])('add(%s, %s) = %s', (a, b, expected) => {
    expect(s(add(d(a), d(b)))).toBe(expected);
    expect(s(add(d(b), d(a)))).toBe(expected);
  });

  it.each([
    ['0.3', '0.1', '0.2'],
    ['1', '1.000', '0'],
    ['0', '5.25', '-5.25'],
    [
      '123456789012345678.123456789012',
      '987654321098765432.987654321098',
      '-864197532086419754.864197532086',
    ],
    ['1000000000000000000', '0.000000000001', '999999999999999999.999999999999'],
  ])('sub(%s, %s) = %s', (a, b, expected) => {
    expect(s(sub(d(a), d(b)))).toBe(expected);
  });

  it.each([
    ['1.5', '2', '3'],
    ['-2.5', '0.4', '-1'],
    ['0.1', '0.1', '0.01'],
    ['100', '10.5', '1050'],
    ['0', '-7.25', '0'],
    ['0.000000000001', '0.000000000001', '0.000000000000000000000001'],
    [
      '999999999999999999.999999999999',
      '999999999999999999.999999999999',
      '999999999999999999999999999998000000.000000000000000000000001',
    ],
    [
      '123456789012345678.123456789012',
      '987654321098765432.987654321098',
      '121932631137021794566377074494610576.619620178764585886175176',
    ],
  ])('mul(%s, %s) = %s', (a, b, expected) => {
    expect(s(mul(d(a), d(b)))).toBe(expected);
  });

  it('never prints negative zero', () => {
    expect(s(neg(d('0')))).toBe('0');
    expect(s(mul(d('-1'), d('0')))).toBe('0');
    expect(s(sub(d('-0.5'), d('-0.5')))).toBe('0');
    expect(s({ units: -0n, scale: 7 })).toBe('0');
  });

  it('prints hand-built, unnormalized values canonically', () => {
    expect(s({ units: 1500n, scale: 3 })).toBe('1.5');
    expect(s({ units: 5n, scale: 4 })).toBe('0.0005');
    expect(s({ units: -5n, scale: 4 })).toBe('-0.0005');
    expect(s({ units: 120n, scale: 0 })).toBe('120');
  });

  it('compares by value whatever the scale', () => {
    expect(cmp(d('1.50'), d('1.5'))).toBe(0);
    expect(cmp({ units: 1500n, scale: 3 }, d('1.5'))).toBe(0);
    expect(cmp(d('-1'), d('0'))).toBe(-1);
    expect(cmp(d('0.000000000002'), d('0.000000000001'))).toBe(1);
    expect(cmp(d('999999999999999999'), d('999999999999999998.999999999999'))).toBe(1);
  });

  it('reports zero and sign', () => {
    expect(isZero(d('0.000'))).toBe(true);
    expect(isZero(d('0.000000000001'))).toBe(false);
    expect(sign(d('-0.1'))).toBe(-1);
    expect(sign(d('0'))).toBe(0);
    expect(sign(d('3'))).toBe(1);
  });

  it('normalizes what it builds so that equal values are structurally equal', () => {
    expect(decimal(1500n, 3)).toEqual({ units: 15n, scale: 1 });
    expect(d('12.5000')).toEqual(d('12.5'));
    expect(() => decimal(1n, -1)).toThrow(RangeError);
    expect(() => decimal(1n, 1.5)).toThrow(RangeError);
  });
});

/** Any decimal an API client may send: up to 18 integer and 12 fraction digits. */
const apiDecimal: fc.Arbitrary<Decimal> = fc.integer({ min: 0, max: 12 }).chain((scale) => {
  const limit = 10n ** BigInt(18 + scale) - 1n;
  return fc.bigInt({ min: -limit, max: limit }).map((units) => decimal(units, scale));
});

describe('arithmetic properties (never floats)', () => {
  it('sub undoes add exactly', () => {
    fc.assert(
      fc.property(apiDecimal, apiDecimal, (a, b) => {
        expect(cmp(sub(add(a, b), b), a)).toBe(0);
        expect(s(sub(add(a, b), b))).toBe(s(a));
      }),
    );
  });

  it('add is commutative and neg is its inverse', () => {
    fc.assert(
      fc.property(apiDecimal, apiDecimal, (a, b) => {
        expect(s(add(a, b))).toBe(s(add(b, a)));
        expect(isZero(add(a, neg(a)))).toBe(true);
      }),
    );
  });

  it('multiplying by one (at any scale) changes nothing', () => {
    fc.assert(
      fc.property(apiDecimal, fc.integer({ min: 0, max: 30 }), (a, zeros) => {
        const one = { units: 10n ** BigInt(zeros), scale: zeros };
        expect(s(mul(a, one))).toBe(s(a));
      }),
    );
  });

  it('the canonical string parses back to the same value, strictly', () => {
    fc.assert(
      fc.property(apiDecimal, (a) => {
        const text = s(a);
        expect(text).toMatch(/^-?(0|[1-9]\d*)(\.\d*[1-9])?$/);
        expect(text).not.toBe('-0');
        expect(parseDecimal(text)).toEqual(a);
      }),
    );
  });

  it('agrees with integer arithmetic on values scaled to 12 fraction digits', () => {
    fc.assert(
      fc.property(apiDecimal, apiDecimal, (a, b) => {
        const fixed = (x: Decimal): bigint => x.units * 10n ** BigInt(12 - x.scale);
        const sum = add(a, b);
        expect(sum.units * 10n ** BigInt(12 - sum.scale)).toBe(fixed(a) + fixed(b));
        const product = mul(a, b);
        expect(product.units * 10n ** BigInt(24 - product.scale)).toBe(fixed(a) * fixed(b));
      }),
    );
  });
});
