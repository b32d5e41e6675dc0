import fc from 'fast-check';

import { PartitionKeyError, parsePartitionKey, partitionKey } from '../../../src/domain/partition';

/** Strings made mostly of the characters that could make a naive key collide. */
const tricky = fc.string({
  unit: fc.constantFrom('_', '%', '5', 'F', 'f', '2', 'a', '%25', '%5F', '__'),
  maxLength: 12,
});
const anyString = fc.oneof(tricky, fc.string(), fc.string({ unit: 'binary' }));
type Triple = [string, string, string];
const triple: fc.Arbitrary<Triple> = fc.tuple(anyString, anyString, anyString);

/**
 * A triple and a second one built to collide under naive schemes: the same
 * characters split at other underscores, or an escape written literally.
 */
const confusablePair: fc.Arbitrary<[Triple, Triple]> = triple.chain((x) => {
  const joined = x.join('_');
  const cuts = joined.split('').flatMap((ch, i) => (ch === '_' ? [i] : []));
  const resplit = fc
    .tuple(fc.nat({ max: cuts.length - 1 }), fc.nat({ max: cuts.length - 1 }))
    .map(([i, j]): Triple => {
      const [p, q] = [cuts[Math.min(i, j)] ?? 0, cuts[Math.max(i, j)] ?? 0];
      return [joined.slice(0, p), joined.slice(p + 1, q), joined.slice(q + 1)];
    });
  const literalEscape = fc.nat({ max: 2 }).map((k): Triple => {
    const y: Triple = [...x];
    y[k] = y[k]!.replace('_', '%5F').replace('%25', '%');
    return y;
  });
  return fc.tuple(fc.constant(x), fc.oneof(resplit, literalEscape, triple));
});

describe('partition key', () => {
  it('joins the escaped components with "_"', () => {
    expect(partitionKey('ACC-1', 'BOOK', 'US0378331005')).toBe('ACC-1_BOOK_US0378331005');
    expect(partitionKey('a_b', 'c%d', '')).toBe('a%5Fb_c%25d_');
    expect(partitionKey('%5F', '_', '%')).toBe('%255F_%5F_%25');
  });

  it('keeps the triples that naive joining would confuse apart', () => {
    const keys = [
      partitionKey('a_b', 'c', 'd'),
      partitionKey('a', 'b_c', 'd'),
      partitionKey('a', 'b', 'c_d'),
      partitionKey('a%5Fb', 'c', 'd'),
      partitionKey('a', '_b', 'c_d'),
    ];
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('is injective: distinct triples give distinct keys (property)', () => {
    // Two independent random triples almost never collide even under a naive
    // scheme, so the second triple is mostly built to be confusable with the first.
    fc.assert(
      fc.property(confusablePair, ([x, y]) => {
        fc.pre(JSON.stringify(x) !== JSON.stringify(y));
        expect(partitionKey(...x)).not.toBe(partitionKey(...y));
      }),
      { numRuns: 2000 },
    );
  });

  it('is inverted by parsePartitionKey (property)', () => {
    fc.assert(
      fc.property(triple, ([accountId, bookId, securityId]) => {
        const key = partitionKey(accountId, bookId, securityId);
        expect(parsePartitionKey(key)).toEqual({ accountId, bookId, securityId });
        // A raw "_" only ever appears as one of the two separators.
        expect(key.split('_')).toHaveLength(3);
      }),
      { numRuns: 2000 },
    );
  });

  it.each([
    ['a_b', /exactly 3 components/],
    ['abc', /exactly 3 components/],
    ['a_b_c_d', /exactly 3 components/],
    ['a%_b_c', /"%" must be followed by "25" or "5F"/],
    ['a%5f_b_c', /found "%5f"/],
    ['a%41_b_c', /found "%41"/],
    ['a_b_c%2', /found "%2"/],
  ])('rejects %j, which partitionKey cannot produce', (key, reason) => {
    expect(() => parsePartitionKey(key)).toThrow(PartitionKeyError);
    expect(() => parsePartitionKey(key)).toThrow(reason);
  });

  it('only accepts keys that re-encode to themselves (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom('_', '%', '2', '5', 'F', 'x'), maxLength: 16 }),
        (key) => {
          let ids;
          try {
            ids = parsePartitionKey(key);
          } catch (error) {
            expect(error).toBeInstanceOf(PartitionKeyError);
            return;
          }
          expect(partitionKey(ids.accountId, ids.bookId, ids.securityId)).toBe(key);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
