/**
 * ISO 4217 List One: the active alphabetic currency and fund codes.
 *
 * Kept as data in the repository rather than taken from `Intl`, whose list
 * depends on the ICU build and still contains withdrawn codes. Updating it is
 * a reviewed change with a test run, which is what a list that decides which
 * trades are accepted deserves.
 *
 * As of the 2026 edition of the list: includes XAD, XCG (replacing ANG) and
 * ZWG (replacing ZWL); no longer includes ANG, BGN (euro since 2026), CUC,
 * HRK, SLL or ZWL.
 */
// Grouped by first letter so that the diff of an ISO amendment stays readable.
// prettier-ignore
export const ACTIVE_CURRENCY_CODES: readonly string[] = Object.freeze([
  'AED', 'AFN', 'ALL', 'AMD', 'AOA', 'ARS', 'AUD', 'AWG', 'AZN',
  'BAM', 'BBD', 'BDT', 'BHD', 'BIF', 'BMD', 'BND', 'BOB', 'BOV', 'BRL', 'BSD', 'BTN', 'BWP', 'BYN', 'BZD',
  'CAD', 'CDF', 'CHE', 'CHF', 'CHW', 'CLF', 'CLP', 'CNY', 'COP', 'COU', 'CRC', 'CUP', 'CVE', 'CZK',
  'DJF', 'DKK', 'DOP', 'DZD',
  'EGP', 'ERN', 'ETB', 'EUR',
  'FJD', 'FKP',
  'GBP', 'GEL', 'GHS', 'GIP', 'GMD', 'GNF', 'GTQ', 'GYD',
  'HKD', 'HNL', 'HTG', 'HUF',
  'IDR', 'ILS', 'INR', 'IQD', 'IRR', 'ISK',
  'JMD', 'JOD', 'JPY',
  'KES', 'KGS', 'KHR', 'KMF', 'KPW', 'KRW', 'KWD', 'KYD', 'KZT',
  'LAK', 'LBP', 'LKR', 'LRD', 'LSL', 'LYD',
  'MAD', 'MDL', 'MGA', 'MKD', 'MMK', 'MNT', 'MOP', 'MRU', 'MUR', 'MVR', 'MWK', 'MXN', 'MXV', 'MYR', 'MZN',
  'NAD', 'NGN', 'NIO', 'NOK', 'NPR', 'NZD',
  'OMR',
  'PAB', 'PEN', 'PGK', 'PHP', 'PKR', 'PLN', 'PYG',
  'QAR',
  'RON', 'RSD', 'RUB', 'RWF',
  'SAR', 'SBD', 'SCR', 'SDG', 'SEK', 'SGD', 'SHP', 'SLE', 'SOS', 'SRD', 'SSP', 'STN', 'SVC', 'SYP', 'SZL',
  'THB', 'TJS', 'TMT', 'TND', 'TOP', 'TRY', 'TTD', 'TWD', 'TZS',
  'UAH', 'UGX', 'USD', 'USN', 'UYI', 'UYU', 'UYW', 'UZS',
  'VED', 'VES', 'VND', 'VUV',
  'WST',
  'XAD', 'XAF', 'XAG', 'XAU', 'XBA', 'XBB', 'XBC', 'XBD', 'XCD', 'XCG', 'XDR', 'XOF', 'XPD', 'XPF', 'XPT', 'XSU', 'XTS', 'XUA', 'XXX',
  'YER',
  'ZAR', 'ZMW', 'ZWG',
]);

/**
 * Codes on List One that name no real currency a trade can settle in:
 * XTS is reserved for testing and XXX means "no currency involved".
 */
export const NON_TRADE_CURRENCY_CODES: readonly string[] = Object.freeze(['XTS', 'XXX']);

const ACTIVE = new Set(ACTIVE_CURRENCY_CODES);
const TRADEABLE = new Set(ACTIVE_CURRENCY_CODES.filter((c) => !NON_TRADE_CURRENCY_CODES.includes(c)));

/** True for a code on ISO 4217 List One (exact, upper case). */
export function isActiveCurrencyCode(code: string): boolean {
  return ACTIVE.has(code);
}

/** True for a code a trade may carry: active, and not XTS or XXX. */
export function isTradeCurrencyCode(code: string): boolean {
  return TRADEABLE.has(code);
}
