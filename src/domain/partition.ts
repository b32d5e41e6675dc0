/**
 * The partition key: one string per (account, book, security) triple.
 *
 * A partition is the unit of ordering, locking and fencing, so two different
 * triples sharing a key would interleave two positions' trades and fold one
 * into the other. Plain `${a}_${b}_${s}` is not enough ("a_b"+"c" and
 * "a"+"b_c" collide), so each component is percent-escaped first.
 */

/** The separator between components; after escaping it never occurs inside one. */
export const PARTITION_SEPARATOR = '_';

/** Thrown by {@link parsePartitionKey} for a string that {@link partitionKey} cannot have produced. */
export class PartitionKeyError extends Error {
  constructor(
    readonly key: string,
    reason: string,
  ) {
    super(
      `invalid partition key ${JSON.stringify(key.length > 80 ? `${key.slice(0, 80)}…` : key)}: ${reason}`,
    );
    this.name = 'PartitionKeyError';
  }
}

/** The three identifiers a partition key is made of. */
export interface PartitionIds {
  readonly accountId: string;
  readonly bookId: string;
  readonly securityId: string;
}

/**
 * Escapes `%` first and then `_`, so that the output contains `_` only where
 * the input had none and every `%` starts one of exactly two escapes; that
 * is what makes the mapping reversible and therefore injective.
 */
function escapeComponent(value: string): string {
  return value.replace(/%/g, '%25').replace(/_/g, '%5F');
}

function unescapeComponent(key: string, component: string): string {
  let out = '';
  for (let i = 0; i < component.length; i += 1) {
    const ch = component[i];
    if (ch !== '%') {
      out += ch;
      continue;
    }
    const code = component.slice(i + 1, i + 3);
    if (code === '25') out += '%';
    else if (code === '5F') out += '_';
    else {
      // Accepting other escapes (or lower case "%5f") would give one triple two keys.
      throw new PartitionKeyError(key, `"%" must be followed by "25" or "5F", found "%${code}"`);
    }
    i += 2;
  }
  return out;
}

/**
 * The partition key of a triple: `${account}_${book}_${security}` with `%`
 * written as `%25` and `_` as `%5F` inside each component. Injective for any
 * strings, empty ones included, so it is safe even before validation.
 */
export function partitionKey(accountId: string, bookId: string, securityId: string): string {
  return [accountId, bookId, securityId].map(escapeComponent).join(PARTITION_SEPARATOR);
}

/**
 * Inverse of {@link partitionKey}, for operators and dashboards that only
 * have the key. Rejects any string `partitionKey` would not produce, so a
 * parsed key always re-encodes to itself.
 */
export function parsePartitionKey(key: string): PartitionIds {
  if (typeof key !== 'string') throw new PartitionKeyError(String(key), 'expected a string');
  const parts = key.split(PARTITION_SEPARATOR);
  if (parts.length !== 3) {
    throw new PartitionKeyError(
      key,
      `expected exactly 3 components separated by "${PARTITION_SEPARATOR}" (account_book_security), found ${parts.length}`,
    );
  }
  const [account, book, security] = parts as [string, string, string];
  return {
    accountId: unescapeComponent(key, account),
    bookId: unescapeComponent(key, book),
    securityId: unescapeComponent(key, security),
  };
}
