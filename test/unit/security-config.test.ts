/**
 * Secrets and connections in the configuration: API tokens from the
 * environment and from a file, passwords from files, TLS settings, the
 * options every Redis client and PostgreSQL pool is built from, the rate
 * limiter's bucket, and that no message or log description ever shows a
 * secret.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { parse as parsePgUrl } from 'pg-connection-string';

import {
  ConfigError,
  describeConfig,
  loadMigrateConfig,
  loadProducerConfig,
  loadWorkerConfig,
  type Env,
} from '../../src/config';
import { pgConnection, pgSsl, redisOptions } from '../../src/config/connections';
import { TokenVerifier, tokenId } from '../../src/producer/auth';
import { RateLimiter } from '../../src/producer/rate-limit';

const TOKEN_A = 'tok-A-0123456789abcdefXYZ';
const TOKEN_B = 'tok-B-ffffffffffffffff+/==';
const TOKEN_C = 'tok-C-from-the-file-0000000';
const PEM = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tf-secrets-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function file(name: string, content: string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, content);
  return p;
}

function problemsOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('API tokens', () => {
  test('API_TOKENS and API_TOKENS_FILE are used together; comments, blank lines and repeats are dropped', () => {
    const tokens = file('tokens', `# clients of desk A\n${TOKEN_C}\n\n  ${TOKEN_A}  \r\n# old\n`);
    const c = loadProducerConfig({ API_TOKENS: `${TOKEN_A}, ${TOKEN_B}`, API_TOKENS_FILE: tokens });
    expect(c.apiTokens).toEqual([TOKEN_A, TOKEN_B, TOKEN_C]);
    expect(loadProducerConfig({}).apiTokens).toEqual([]);
  });

  test('bad tokens are reported by position, with the fix, never with their value', () => {
    const tokens = file('bad-tokens', `${TOKEN_C}\nshort-one\nhas space in it but long\n`);
    const err = problemsOf(() =>
      loadProducerConfig({ API_TOKENS: `${TOKEN_A},tiny`, API_TOKENS_FILE: tokens, PORT: 'x' }),
    );
    const text = err.message;
    expect(err.problems.map((p) => p.variable).sort()).toEqual([
      'API_TOKENS',
      'API_TOKENS_FILE',
      'API_TOKENS_FILE',
      'PORT',
    ]);
    expect(text).toMatch(/API_TOKENS item 2 \(value hidden\) is 4 characters long/);
    expect(text).toMatch(/line 2 \(value hidden\) is 9 characters long/);
    expect(text).toMatch(/line 3 \(value hidden\) has a character a bearer token cannot carry/);
    expect(text).toMatch(/openssl rand -base64 32/);
    for (const secret of [TOKEN_A, TOKEN_C, 'tiny', 'short-one', 'has space'])
      expect(text).not.toContain(secret);
  });

  test('a missing or token-less file is an error, not "authentication off"', () => {
    expect(() => loadProducerConfig({ API_TOKENS_FILE: path.join(dir, 'nope') })).toThrow(
      /API_TOKENS_FILE=".*nope": the file does not exist. Fix: point API_TOKENS_FILE at/,
    );
    expect(() => loadProducerConfig({ API_TOKENS_FILE: file('empty', '# nothing\n\n') })).toThrow(
      /holds no token .* or unset API_TOKENS_FILE to turn authentication off/,
    );
    expect(() => loadProducerConfig({ API_TOKENS_FILE: dir })).toThrow(/the file is a directory/);
  });

  test('describeConfig shows how many tokens, never which', () => {
    const c = loadProducerConfig({ API_TOKENS: `${TOKEN_A},${TOKEN_B}` });
    const shown = JSON.stringify(describeConfig(c));
    expect(describeConfig(c).apiTokens).toBe('(2 hidden)');
    expect(shown).not.toContain(TOKEN_A);
    expect(shown).not.toContain(TOKEN_B);
  });

  test('the verifier names a token by a short hash, the same one whichever token list it is in', () => {
    const v = new TokenVerifier([TOKEN_A, TOKEN_B]);
    expect(v.check(`Bearer ${TOKEN_B}`)).toEqual({ ok: true, id: tokenId(TOKEN_B) });
    expect(tokenId(TOKEN_B)).toMatch(/^[0-9a-f]{12}$/);
    expect(tokenId(TOKEN_B)).not.toBe(tokenId(TOKEN_A));
    expect(TOKEN_B).not.toContain(tokenId(TOKEN_B));
    expect(v.check(`Bearer ${TOKEN_A}x`)).toMatchObject({ ok: false, reason: 'invalid' });
  });
});

describe('passwords and CAs from files', () => {
  test('a password file gives the password less its trailing newline, and overrides the URL', () => {
    const env: Env = {
      REDIS_URL: 'redis://user:url-password@cache:6380/3',
      REDIS_PASSWORD_FILE: file('redis-pw', 'from-the-file\n'),
      DATABASE_URL: 'postgres://app:url-pw@db:5433/tf',
      DATABASE_PASSWORD: 'p@ss:w/rd%41 é',
    };
    const w = loadWorkerConfig(env);
    expect(w.redisPassword).toBe('from-the-file');
    expect(w.databasePassword).toBe('p@ss:w/rd%41 é');
    expect(redisOptions(w)).toEqual({
      host: 'cache',
      port: 6380,
      db: 3,
      username: 'user',
      password: 'from-the-file',
    });
    // pg reads the URL back exactly (special characters survive the round trip).
    const parsed = parsePgUrl(pgConnection(w).databaseUrl);
    expect(parsed).toMatchObject({ user: 'app', password: 'p@ss:w/rd%41 é', host: 'db', port: '5433' });
    expect(
      pgConnection(loadWorkerConfig({ DATABASE_URL: 'postgres://db/tf', DATABASE_PASSWORD: 'x' })),
    ).toMatchObject({ ssl: false });
    expect(
      parsePgUrl(
        pgConnection(loadMigrateConfig({ DATABASE_URL: 'postgres://db/tf', DATABASE_PASSWORD: 'x' }))
          .databaseUrl,
      ),
    ).toMatchObject({ password: 'x', host: 'db' });
  });

  test('without an override, the URL password is used as before', () => {
    const w = loadWorkerConfig({ REDIS_URL: 'redis://:url%40pw@cache:6379' });
    expect(redisOptions(w)).toEqual({ host: 'cache', port: 6379, password: 'url@pw' });
    expect(pgConnection(w).databaseUrl).toBe(w.databaseUrl);
  });

  test('file problems are reported with the others, naming the variable and path, never the content', () => {
    const twoLines = file('two-lines', 'secret-line-1\nsecret-line-2\n');
    const err = problemsOf(() =>
      loadProducerConfig({
        REDIS_PASSWORD_FILE: file('empty-pw', '\n'),
        REDIS_URL: 'rediss://cache:6380',
        REDIS_TLS_CA_FILE: file('not-pem', 'hello'),
        DATABASE_PASSWORD_FILE: twoLines,
        DATABASE_SSL_MODE: 'verify-full',
        DATABASE_SSL_CA_FILE: path.join(dir, 'missing-ca'),
        WORKER_CONCURRENCY: 'ignored by the producer',
        LOG_LEVEL: 'loud',
      }),
    );
    expect(err.problems.map((p) => p.variable).sort()).toEqual([
      'DATABASE_PASSWORD_FILE',
      'DATABASE_SSL_CA_FILE',
      'LOG_LEVEL',
      'REDIS_PASSWORD_FILE',
      'REDIS_TLS_CA_FILE',
    ]);
    expect(err.message).toMatch(/REDIS_PASSWORD_FILE=".*empty-pw": the file is empty/);
    expect(err.message).toMatch(/REDIS_TLS_CA_FILE=".*not-pem": the file holds no PEM certificate/);
    expect(err.message).toMatch(/DATABASE_PASSWORD_FILE=".*two-lines": the file has more than one line/);
    expect(err.message).not.toContain('secret-line');
  });

  test('a CA file is read at start-up and used for TLS; describeConfig shows its path and size only', () => {
    const ca = file('ca.crt', PEM);
    const w = loadWorkerConfig({
      REDIS_URL: 'rediss://cache:6380',
      REDIS_TLS_CA_FILE: ca,
      DATABASE_SSL_MODE: 'verify-full',
      DATABASE_SSL_CA_FILE: ca,
    });
    expect(redisOptions(w)).toEqual({
      host: 'cache',
      port: 6380,
      tls: { rejectUnauthorized: true, ca: PEM },
    });
    expect(pgSsl(w)).toEqual({ rejectUnauthorized: true, ca: PEM });
    const shown = describeConfig(w);
    expect(shown.redisTls).toEqual({
      caFile: ca,
      caPem: `(PEM, ${PEM.length} characters)`,
      rejectUnauthorized: true,
    });
    expect(JSON.stringify(shown)).not.toContain('MIIBfake');
  });

  test('TLS settings: rediss:// alone uses the built-in CAs; verification can be turned off explicitly', () => {
    expect(redisOptions(loadWorkerConfig({ REDIS_URL: 'rediss://cache' })).tls).toEqual({
      rejectUnauthorized: true,
    });
    expect(
      redisOptions(loadWorkerConfig({ REDIS_URL: 'rediss://cache', REDIS_TLS_REJECT_UNAUTHORIZED: 'false' }))
        .tls,
    ).toEqual({ rejectUnauthorized: false });
    expect(redisOptions(loadWorkerConfig({ REDIS_URL: 'redis://cache' })).tls).toBeUndefined();
    expect(pgSsl(loadWorkerConfig({}))).toBe(false);
    expect(pgSsl(loadWorkerConfig({ DATABASE_SSL_MODE: 'require' }))).toEqual({ rejectUnauthorized: false });
    expect(pgSsl(loadWorkerConfig({ DATABASE_SSL_MODE: 'verify-full' }))).toEqual({
      rejectUnauthorized: true,
    });
  });

  test('settings that contradict each other are refused with the fix', () => {
    const ca = file('ca2.crt', PEM);
    const err = problemsOf(() =>
      loadWorkerConfig({
        REDIS_PASSWORD: 'a-redis-password',
        REDIS_PASSWORD_FILE: file('pw2', 'other'),
        REDIS_TLS_CA_FILE: ca,
        DATABASE_SSL_CA_FILE: ca,
        DATABASE_URL: 'postgres://db/tf?sslmode=require&application_name=x',
      }),
    );
    const text = err.message;
    expect(text).toMatch(/REDIS_PASSWORD and REDIS_PASSWORD_FILE are both set.*Fix: unset one/);
    expect(text).toMatch(
      /REDIS_TLS_CA_FILE is set but REDIS_URL uses redis:\/\/ \(no TLS\).*Fix: use a rediss:\/\/ URL/,
    );
    expect(text).toMatch(
      /DATABASE_SSL_CA_FILE is set but DATABASE_SSL_MODE=disable.*Fix: set DATABASE_SSL_MODE=verify-full/,
    );
    expect(text).toMatch(
      /DATABASE_URL carries sslmode.*Fix: remove them from the URL and set DATABASE_SSL_MODE/,
    );
    expect(text).not.toContain('a-redis-password');
    expect(() => loadWorkerConfig({ REDIS_TLS_REJECT_UNAUTHORIZED: 'false' })).toThrow(
      /REDIS_TLS_REJECT_UNAUTHORIZED=false is set but REDIS_URL uses redis:\/\//,
    );
    expect(() => loadProducerConfig({ RATE_LIMIT_BURST: '10' })).toThrow(
      /RATE_LIMIT_BURST=10 is set but RATE_LIMIT_PER_SECOND=0 turns rate limiting off/,
    );
  });

  test('passwords are hidden in describeConfig and in error messages', () => {
    const c = loadProducerConfig({
      REDIS_PASSWORD: 'redis-secret-value',
      DATABASE_PASSWORD: 'pg-secret-value',
      DATABASE_URL: 'postgres://app:url-secret@db/tf',
    });
    const shown = JSON.stringify(describeConfig(c));
    for (const s of ['redis-secret-value', 'pg-secret-value', 'url-secret']) expect(shown).not.toContain(s);
    expect(describeConfig(c)).toMatchObject({ redisPassword: '(hidden)', databasePassword: '(hidden)' });
    const err = problemsOf(() =>
      loadProducerConfig({
        REDIS_PASSWORD: 'redis-secret-value',
        REDIS_PASSWORD_FILE: 'x',
        DATABASE_URL: 'mysql://u:pg-secret-value@h/d',
      }),
    );
    expect(err.message).not.toContain('redis-secret-value');
    expect(err.message).not.toContain('pg-secret-value');
  });
});

describe('rate limit configuration', () => {
  test('off by default; the burst defaults to one second of the rate', () => {
    expect(loadProducerConfig({}).rateLimit).toEqual({ perSecond: 0, burst: 0 });
    expect(loadProducerConfig({ RATE_LIMIT_PER_SECOND: '500' }).rateLimit).toEqual({
      perSecond: 500,
      burst: 500,
    });
    expect(loadProducerConfig({ RATE_LIMIT_PER_SECOND: '500', RATE_LIMIT_BURST: '2000' }).rateLimit).toEqual({
      perSecond: 500,
      burst: 2000,
    });
  });
});

describe('RateLimiter', () => {
  let now = 0;
  const clock = () => now;
  beforeEach(() => {
    now = 1_000_000;
  });

  test('a client gets its burst at once, then the rate; others are not affected', () => {
    const rl = new RateLimiter({ perSecond: 10, burst: 5, now: clock });
    for (let i = 0; i < 5; i++) expect(rl.admit('a')).toEqual({ ok: true });
    expect(rl.admit('a')).toEqual({ ok: false, retryAfterSeconds: 1 });
    expect(rl.admit('b')).toEqual({ ok: true });
    now += 100; // one unit back at 10/s
    expect(rl.admit('a')).toEqual({ ok: true });
    expect(rl.admit('a').ok).toBe(false);
    now += 10_000; // refills to the burst, never above
    for (let i = 0; i < 5; i++) expect(rl.admit('a').ok).toBe(true);
    expect(rl.admit('a').ok).toBe(false);
  });

  test('a batch larger than what is left is admitted, and its debt is paid by waiting', () => {
    const rl = new RateLimiter({ perSecond: 100, burst: 100, now: clock });
    expect(rl.admit('a').ok).toBe(true);
    rl.charge('a', 999); // a batch of 1000 trades
    const refused = rl.admit('a');
    expect(refused).toEqual({ ok: false, retryAfterSeconds: 10 });
    now += 9_000;
    expect(rl.admit('a').ok).toBe(false);
    now += 1_010;
    expect(rl.admit('a').ok).toBe(true);
  });

  test('memory stays bounded: the least recently used client is dropped first', () => {
    const rl = new RateLimiter({ perSecond: 1, burst: 1, maxClients: 3, now: clock });
    for (const k of ['a', 'b', 'c']) expect(rl.admit(k).ok).toBe(true);
    expect(rl.admit('a').ok).toBe(false); // a is now the most recently used
    expect(rl.admit('d').ok).toBe(true); // drops b, the least recently used
    expect(rl.size).toBe(3);
    expect(rl.admit('a').ok).toBe(false); // a was kept
    expect(rl.admit('b').ok).toBe(true); // b starts afresh
    for (let i = 0; i < 100_000; i++) rl.admit(`ip:${i}`);
    expect(rl.size).toBe(3);
  });

  test('refuses a zero rate or burst', () => {
    expect(() => new RateLimiter({ perSecond: 0, burst: 1 })).toThrow(RangeError);
    expect(() => new RateLimiter({ perSecond: 1, burst: 0 })).toThrow(RangeError);
  });
});
