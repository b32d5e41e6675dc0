/**
 * The producer's error catalogue: docs/errors.md stays generated from it,
 * every code is well-formed and used, and dependency failures are classified
 * as retryable only when they are.
 */
import fs from 'node:fs';
import path from 'node:path';

import { AUTH_REALM, TokenVerifier, tokenId } from '../../src/producer/auth';
import { ERRORS_DOC_PATH } from '../../src/producer/errors-doc';
import {
  ApiError,
  DependencyTimeoutError,
  ERROR_CATALOGUE,
  ERROR_CODES,
  isDatabaseUnavailable,
  isRedisUnavailable,
  renderErrorsDoc,
  withTimeout,
  type ErrorSpec,
} from '../../src/producer/errors';

describe('docs/errors.md', () => {
  test('is the rendering of the catalogue (fix: npx tsx src/producer/errors-doc.ts --write)', () => {
    const current = fs.existsSync(ERRORS_DOC_PATH) ? fs.readFileSync(ERRORS_DOC_PATH, 'utf8') : '(missing)';
    expect(current).toBe(renderErrorsDoc());
  });

  test('lists every code with its status', () => {
    const doc = renderErrorsDoc();
    for (const code of ERROR_CODES) {
      expect(doc).toContain(`## \`${code}\`\n\nHTTP ${ERROR_CATALOGUE[code].status}`);
    }
  });
});

describe('the catalogue', () => {
  const specs = Object.entries(ERROR_CATALOGUE) as [string, ErrorSpec][];

  test.each(specs)(
    '%s is a snake_case code with an error status, a description and retry advice when retryable',
    (code, spec) => {
      expect(code).toMatch(/^[a-z][a-z_]*[a-z]$/);
      expect(spec.status).toBeGreaterThanOrEqual(400);
      expect(spec.status).toBeLessThan(600);
      expect(spec.description.length).toBeGreaterThan(30);
      // 429 and 503 tell the client when to come back; nothing else does.
      expect(spec.retryAfterSeconds !== undefined).toBe(spec.status === 429 || spec.status === 503);
    },
  );

  test('every code is raised somewhere in src/producer', () => {
    const dir = path.join(__dirname, '..', '..', 'src', 'producer');
    const source = fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.ts') && f !== 'errors-doc.ts')
      .map((f) => {
        const text = fs.readFileSync(path.join(dir, f), 'utf8');
        // In errors.ts, only what follows the catalogue counts as use.
        return f === 'errors.ts' ? text.slice(text.indexOf('export type ErrorCode')) : text;
      })
      .join('\n');
    const unused = ERROR_CODES.filter((code) => !source.includes(`'${code}'`));
    expect(unused).toEqual([]);
  });

  test('ApiError carries the catalogued status and Retry-After, and renders the one error shape', () => {
    const err = new ApiError('backlog_full', 'full', [{ path: '', code: 'backlog_full', message: 'x' }]);
    expect(err.status).toBe(429);
    expect(err.retryAfterSeconds).toBe(ERROR_CATALOGUE.backlog_full.retryAfterSeconds);
    expect(err.toBody()).toEqual({
      error: {
        code: 'backlog_full',
        message: 'full',
        details: [{ path: '', code: 'backlog_full', message: 'x' }],
      },
    });
    expect(new ApiError('route_not_found', 'no').toBody()).toEqual({
      error: { code: 'route_not_found', message: 'no' },
    });
  });
});

describe('classifying dependency failures', () => {
  const replyError = (message: string) => Object.assign(new Error(message), { name: 'ReplyError' });

  test('Redis: connection failures, timeouts and transient replies are "unavailable"; bugs are not', () => {
    expect(
      isRedisUnavailable(new Error("Stream isn't writeable and enableOfflineQueue options is false")),
    ).toBe(true);
    expect(isRedisUnavailable(new Error('Command timed out'))).toBe(true);
    expect(
      isRedisUnavailable(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })),
    ).toBe(true);
    expect(isRedisUnavailable(new DependencyTimeoutError('Redis', 10))).toBe(true);
    expect(isRedisUnavailable(replyError('LOADING Redis is loading the dataset in memory'))).toBe(true);
    expect(isRedisUnavailable(replyError('OOM command not allowed when used memory > maxmemory'))).toBe(true);
    expect(isRedisUnavailable(replyError('ERR Error running script: attempt to compare nil'))).toBe(false);
    expect(isRedisUnavailable(new TypeError('x is not a function'))).toBe(false);
    expect(isRedisUnavailable('a string')).toBe(false);
  });

  test('PostgreSQL: connection-class SQLSTATEs and socket errors are "unavailable"; statement errors are not', () => {
    expect(isDatabaseUnavailable(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isDatabaseUnavailable(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isDatabaseUnavailable(Object.assign(new Error('too many clients'), { code: '53300' }))).toBe(true);
    expect(isDatabaseUnavailable(Object.assign(new Error('admin shutdown'), { code: '57P01' }))).toBe(true);
    expect(isDatabaseUnavailable(Object.assign(new Error('syntax error'), { code: '42601' }))).toBe(false);
    expect(isDatabaseUnavailable(Object.assign(new Error('unique violation'), { code: '23505' }))).toBe(
      false,
    );
    expect(isDatabaseUnavailable(new RangeError('seq beyond 2^53'))).toBe(false);
  });

  test('withTimeout rejects late answers and passes early ones', async () => {
    await expect(withTimeout(new Promise(() => undefined), 20, 'Redis (x)')).rejects.toBeInstanceOf(
      DependencyTimeoutError,
    );
    await expect(withTimeout(Promise.resolve(7), 1000, 'x')).resolves.toBe(7);
  });
});

describe('bearer tokens', () => {
  const verifier = new TokenVerifier(['first-token', 'second-token', '']);

  test('accepts any configured token, case-insensitive scheme, and says which (by its short hash)', () => {
    expect(verifier.enabled).toBe(true);
    expect(verifier.check('Bearer first-token')).toEqual({ ok: true, id: tokenId('first-token') });
    expect(verifier.check('bearer second-token')).toEqual({ ok: true, id: tokenId('second-token') });
  });

  test('rejects missing, malformed, empty and wrong tokens with a challenge', () => {
    expect(verifier.check(undefined)).toMatchObject({
      ok: false,
      reason: 'missing',
      wwwAuthenticate: `Bearer realm="${AUTH_REALM}"`,
    });
    expect(verifier.check('Basic Zm9vOmJhcg==')).toMatchObject({ ok: false, reason: 'malformed' });
    expect(verifier.check('Bearer ')).toMatchObject({ ok: false, reason: 'malformed' });
    expect(verifier.check('Bearer first-tokenX')).toMatchObject({ ok: false, reason: 'invalid' });
    expect(verifier.check('Bearer first-toke')).toMatchObject({ ok: false, reason: 'invalid' });
  });

  test('no configured token (or only empty ones) means auth is off', () => {
    expect(new TokenVerifier([]).enabled).toBe(false);
    expect(new TokenVerifier(['']).enabled).toBe(false);
  });
});
