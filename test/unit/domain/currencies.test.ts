import {
  ACTIVE_CURRENCY_CODES,
  isActiveCurrencyCode,
  isTradeCurrencyCode,
  NON_TRADE_CURRENCY_CODES,
} from '../../../src/domain/currencies';

describe('ISO 4217 active currency list', () => {
  it('holds unique, sorted, three-letter upper-case codes', () => {
    for (const code of ACTIVE_CURRENCY_CODES) expect(code).toMatch(/^[A-Z]{3}$/);
    expect(new Set(ACTIVE_CURRENCY_CODES).size).toBe(ACTIVE_CURRENCY_CODES.length);
    expect([...ACTIVE_CURRENCY_CODES].sort()).toEqual(ACTIVE_CURRENCY_CODES);
  });

  it.each(['USD', 'EUR', 'JPY', 'GBP', 'CHF', 'XCG', 'ZWG', 'XAU'])('accepts %s for trades', (code) => {
    expect(isTradeCurrencyCode(code)).toBe(true);
  });

  it.each(['HRK', 'BGN', 'ANG', 'ZWL', 'SLL', 'CUC', 'DEM', 'usd', 'US', ''])(
    'rejects withdrawn or malformed %j',
    (code) => {
      expect(isActiveCurrencyCode(code)).toBe(false);
      expect(isTradeCurrencyCode(code)).toBe(false);
    },
  );

  it('lists XTS and XXX but refuses them on trades', () => {
    for (const code of NON_TRADE_CURRENCY_CODES) {
      expect(isActiveCurrencyCode(code)).toBe(true);
      expect(isTradeCurrencyCode(code)).toBe(false);
    }
  });
});
