/**
 * Redis AUTH + TLS and PostgreSQL password + TLS for real: a TLS-only
 * redis-server and a hostssl-only PostgreSQL with a certificate from a
 * throwaway CA, reached through the one connection factory
 * (src/config/connections.ts) from a configuration loaded the way the
 * processes load theirs. Trusting the CA connects; without it, with another
 * CA, without TLS or with a wrong password, the connection is refused.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import type { Redis } from 'ioredis';
import { sql } from 'kysely';

import { loadProducerConfig, loadWorkerConfig, type Env } from '../../src/config';
import { createRedis, pgConnection } from '../../src/config/connections';
import { createDb } from '../../src/db';
import { startPostgres, startRedis, type PostgresServer, type RedisServer } from '../helpers/servers';
import { haveOpenssl, makeTestCerts, type TestCerts } from '../helpers/tls';

const REDIS_PASSWORD = 'tls-test-redis-password-7Qx';
const PG_PASSWORD = 'tls-test-pg-password-9Kz';

const describeTls = haveOpenssl() ? describe : describe.skip;
if (!haveOpenssl()) console.warn('tls-connections: skipped (no openssl command)');

let dir: string;
let certs: TestCerts;
let redis: RedisServer;
let pg: PostgresServer;
const clients: Redis[] = [];

beforeAll(async () => {
  if (!haveOpenssl()) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tf-tls-'));
  certs = makeTestCerts(dir);
  [redis, pg] = await Promise.all([
    startRedis({ password: REDIS_PASSWORD, tls: certs }),
    startPostgres({ password: PG_PASSWORD, tls: certs }),
  ]);
});

afterAll(async () => {
  for (const c of clients) if (c.status !== 'end') c.disconnect();
  await Promise.allSettled([redis?.stop(), pg?.stop()]);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** A client that tries once and reports the failure instead of reconnecting for ever. */
function redisClient(env: Env): Redis {
  const client = createRedis(loadWorkerConfig(env), {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: true,
    retryStrategy: () => null,
    connectTimeout: 3000,
    // A socket the server never closes (plain TCP to the TLS port) is destroyed soon after disconnect().
    disconnectTimeout: 100,
  });
  client.on('error', () => undefined);
  clients.push(client);
  return client;
}

async function redisOutcome(env: Env): Promise<string> {
  const client = redisClient(env);
  // connect() rejects with "Connection is closed."; the reason is the 'error' event's.
  let reason: string | undefined;
  client.on('error', (err: Error) => (reason ??= err.message));
  try {
    await client.connect();
    const pong = await client.ping();
    await client.quit();
    return pong;
  } catch (err) {
    return `error: ${reason ?? (err as Error).message}`;
  } finally {
    if (client.status !== 'end') client.disconnect();
  }
}

describeTls('Redis with TLS and AUTH', () => {
  const url = () => `rediss://127.0.0.1:${redis.port}`;

  it('connects with rediss://, the CA file and the password (from a file), and runs commands', async () => {
    const pwFile = path.join(dir, 'redis-password');
    fs.writeFileSync(pwFile, `${REDIS_PASSWORD}\n`);
    const env = { REDIS_URL: url(), REDIS_TLS_CA_FILE: certs.caFile, REDIS_PASSWORD_FILE: pwFile };
    expect(await redisOutcome(env)).toBe('PONG');
    // The producer's configuration builds the same client.
    const producer = createRedis(loadProducerConfig(env), { lazyConnect: true });
    clients.push(producer);
    await producer.connect();
    await producer.set('tls-check', 'ok');
    expect(await producer.get('tls-check')).toBe('ok');
    // A duplicate (what the partition consumer makes for its blocking wait) keeps TLS and the password.
    const dup = producer.duplicate();
    clients.push(dup);
    expect(await dup.get('tls-check')).toBe('ok');
    await dup.quit();
    await producer.quit();
  });

  it('REDIS_PASSWORD overrides a wrong password in the URL', async () => {
    const env = {
      REDIS_URL: `rediss://:wrong-one@127.0.0.1:${redis.port}`,
      REDIS_TLS_CA_FILE: certs.caFile,
      REDIS_PASSWORD: REDIS_PASSWORD,
    };
    expect(await redisOutcome(env)).toBe('PONG');
  });

  it('refuses a server whose certificate does not chain to a trusted CA', async () => {
    const builtIn = await redisOutcome({ REDIS_URL: url(), REDIS_PASSWORD });
    expect(builtIn).toMatch(/^error: .*(self[- ]signed|unable to (get|verify)|certificate)/i);
    const other = await redisOutcome({
      REDIS_URL: url(),
      REDIS_PASSWORD,
      REDIS_TLS_CA_FILE: certs.otherCaFile,
    });
    expect(other).toMatch(/^error: .*(self[- ]signed|unable to (get|verify)|certificate)/i);
    // Verification off: connects (for throwaway setups only).
    expect(
      await redisOutcome({ REDIS_URL: url(), REDIS_PASSWORD, REDIS_TLS_REJECT_UNAUTHORIZED: 'false' }),
    ).toBe('PONG');
  });

  it('refuses a wrong or missing password, and plain TCP to the TLS port', async () => {
    expect(
      await redisOutcome({ REDIS_URL: url(), REDIS_TLS_CA_FILE: certs.caFile, REDIS_PASSWORD: 'not-it' }),
    ).toMatch(/^error: .*(WRONGPASS|invalid username-password)/i);
    expect(await redisOutcome({ REDIS_URL: url(), REDIS_TLS_CA_FILE: certs.caFile })).toMatch(
      /^error: .*NOAUTH/,
    );
    expect(await redisOutcome({ REDIS_URL: `redis://127.0.0.1:${redis.port}`, REDIS_PASSWORD })).toMatch(
      /^error: /,
    );
  });
});

describeTls('PostgreSQL with TLS and a password', () => {
  const url = () => `postgres://postgres@127.0.0.1:${pg.port}/postgres`;

  async function pgOutcome(env: Env): Promise<string> {
    const config = loadWorkerConfig({ DATABASE_URL: url(), ...env });
    const handle = createDb({ ...pgConnection(config), poolSize: 1 });
    try {
      const r = await sql<{ ssl: boolean }>`select ssl from pg_stat_ssl where pid = pg_backend_pid()`.execute(
        handle.db,
      );
      return r.rows[0]?.ssl ? 'ssl' : 'plain';
    } catch (err) {
      return `error: ${(err as Error).message}`;
    } finally {
      await handle.close();
    }
  }

  it('verify-full with the CA file and the password (from a file) connects over TLS', async () => {
    const pwFile = path.join(dir, 'pg-password');
    fs.writeFileSync(pwFile, `${PG_PASSWORD}\n`);
    expect(
      await pgOutcome({
        DATABASE_SSL_MODE: 'verify-full',
        DATABASE_SSL_CA_FILE: certs.caFile,
        DATABASE_PASSWORD_FILE: pwFile,
      }),
    ).toBe('ssl');
  });

  it('require encrypts without checking the certificate', async () => {
    expect(await pgOutcome({ DATABASE_SSL_MODE: 'require', DATABASE_PASSWORD: PG_PASSWORD })).toBe('ssl');
  });

  it('verify-full refuses a certificate from an untrusted CA', async () => {
    expect(await pgOutcome({ DATABASE_SSL_MODE: 'verify-full', DATABASE_PASSWORD: PG_PASSWORD })).toMatch(
      /^error: .*(self[- ]signed|unable to (get|verify)|certificate)/i,
    );
    expect(
      await pgOutcome({
        DATABASE_SSL_MODE: 'verify-full',
        DATABASE_SSL_CA_FILE: certs.otherCaFile,
        DATABASE_PASSWORD: PG_PASSWORD,
      }),
    ).toMatch(/^error: .*(self[- ]signed|unable to (get|verify)|certificate)/i);
  });

  it('the server refuses plain TCP and a wrong password', async () => {
    expect(await pgOutcome({ DATABASE_PASSWORD: PG_PASSWORD })).toMatch(
      /^error: .*(no pg_hba.conf entry|SSL off)/,
    );
    expect(
      await pgOutcome({
        DATABASE_SSL_MODE: 'verify-full',
        DATABASE_SSL_CA_FILE: certs.caFile,
        DATABASE_PASSWORD: 'not-it',
      }),
    ).toMatch(/^error: .*password authentication failed/);
  });
});
