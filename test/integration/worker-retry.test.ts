/**
 * Error classification against errors produced by the real servers (refused
 * connections, a terminated backend, a real deadlock, a constraint violation,
 * ioredis on a dead port), and withRetry's loop.
 */
import IORedis from 'ioredis';
import { sql, type Kysely } from 'kysely';
import { Client } from 'pg';
import { createDb, migrateToLatest, type DbHandle } from '../../src/db';
import { HaltPartitionError } from '../../src/queue';
import { FencedError } from '../../src/worker/apply';
import { isConnectionError, isTransientError, withRetry, type RetryInfo } from '../../src/worker/retry';
import { createTestDatabase, type TestDatabase } from '../helpers/isolation';
import { freePort } from '../helpers/servers';

let database: TestDatabase;
let handle: DbHandle;

beforeAll(async () => {
  database = await createTestDatabase();
  handle = createDb({ databaseUrl: database.url, poolSize: 4 });
  await migrateToLatest(handle.db as Kysely<unknown>);
});
afterAll(async () => {
  await handle?.close();
  await database?.drop();
});

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('classification of real errors', () => {
  test('PostgreSQL refusing connections (nothing listening) is a transient connection error', async () => {
    const port = await freePort();
    const dead = createDb({ databaseUrl: `postgres://postgres@127.0.0.1:${port}/x`, poolSize: 1 });
    try {
      const err = await caught(sql`select 1`.execute(dead.db));
      expect(isConnectionError(err)).toBe(true);
      expect(isTransientError(err)).toBe(true);
    } finally {
      await dead.close();
    }
  });

  test('a backend terminated by the server (57P01) is a transient connection error', async () => {
    const victim = new Client({ connectionString: database.url });
    victim.on('error', () => undefined);
    await victim.connect();
    const { rows } = await victim.query<{ pid: number }>('select pg_backend_pid() as pid');
    await sql`select pg_terminate_backend(${rows[0]!.pid})`.execute(handle.db);
    const err = await caught(victim.query('select 1'));
    await victim.end().catch(() => undefined);
    expect(isConnectionError(err)).toBe(true);
    expect(isTransientError(err)).toBe(true);
  });

  test('a deadlock (40P01) is transient but not a connection error; a unique violation is neither', async () => {
    await sql`create table if not exists retry_probe (id int primary key, v int)`.execute(handle.db);
    await sql`insert into retry_probe values (1, 0), (2, 0) on conflict do nothing`.execute(handle.db);
    const a = new Client({ connectionString: database.url });
    const b = new Client({ connectionString: database.url });
    await Promise.all([a.connect(), b.connect()]);
    try {
      await a.query('begin');
      await b.query('begin');
      await a.query('update retry_probe set v = v + 1 where id = 1');
      await b.query('update retry_probe set v = v + 1 where id = 2');
      const results = await Promise.allSettled([
        a.query('update retry_probe set v = v + 1 where id = 2'),
        b.query('update retry_probe set v = v + 1 where id = 1'),
      ]);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect((failed!.reason as { code?: string }).code).toBe('40P01');
      expect(isTransientError(failed!.reason)).toBe(true);
      expect(isConnectionError(failed!.reason)).toBe(false);
    } finally {
      await a.query('rollback').catch(() => undefined);
      await b.query('rollback').catch(() => undefined);
      await Promise.all([a.end(), b.end()]);
    }
    const dup = await caught(sql`insert into retry_probe values (1, 0)`.execute(handle.db));
    expect((dup as { code?: string }).code).toBe('23505');
    expect(isTransientError(dup)).toBe(false);
  });

  test('ioredis on a dead port is transient; fencing and halts are not', async () => {
    const port = await freePort();
    const r = new IORedis({
      port,
      host: '127.0.0.1',
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      disconnectTimeout: 10,
    });
    r.on('error', () => undefined);
    const err = await caught(r.connect().then(() => r.get('x')));
    r.disconnect();
    expect(isTransientError(err)).toBe(true);
    expect(isTransientError(new FencedError('pk', 1, 2))).toBe(false);
    expect(isTransientError(new HaltPartitionError({ code: 'seq_gap', message: 'gap' }))).toBe(false);
    expect(isTransientError(new Error('boom'))).toBe(false);
  });
});

describe('withRetry', () => {
  const deadlock = Object.assign(new Error('deadlock detected'), { code: '40P01' });
  const instant = async () => undefined;

  test('retries transient errors with capped exponential backoff, then succeeds', async () => {
    const seen: RetryInfo[] = [];
    let calls = 0;
    const value = await withRetry(
      async () => {
        calls++;
        if (calls < 5) throw deadlock;
        return 'ok';
      },
      {
        attempts: 5,
        baseMs: 100,
        maxMs: 500,
        random: () => 0.5,
        sleep: instant,
        onRetry: (i) => seen.push(i),
      },
    );
    expect(value).toBe('ok');
    expect(calls).toBe(5);
    expect(seen.map((s) => [s.attempt, s.delayMs])).toEqual([
      [1, 100],
      [2, 200],
      [3, 400],
      [4, 500],
    ]);
  });

  test('rethrows after the last attempt, and at once for a non-transient error', async () => {
    let calls = 0;
    await expect(
      withRetry(
        async () => {
          calls++;
          throw deadlock;
        },
        { attempts: 3, sleep: instant },
      ),
    ).rejects.toBe(deadlock);
    expect(calls).toBe(3);
    calls = 0;
    const fenced = new FencedError('pk', 1, 2);
    await expect(
      withRetry(
        async () => {
          calls++;
          throw fenced;
        },
        { attempts: 3, sleep: instant },
      ),
    ).rejects.toBe(fenced);
    expect(calls).toBe(1);
  });

  test('stops retrying when canRetry turns false (shutdown, breaker open) or the signal aborts', async () => {
    let calls = 0;
    let allowed = true;
    await expect(
      withRetry(
        async () => {
          calls++;
          allowed = calls < 2;
          throw deadlock;
        },
        { attempts: 10, sleep: instant, canRetry: () => allowed },
      ),
    ).rejects.toBe(deadlock);
    expect(calls).toBe(2);

    const controller = new AbortController();
    calls = 0;
    const started = Date.now();
    const p = withRetry(
      async () => {
        calls++;
        throw deadlock;
      },
      { attempts: 10, baseMs: 10_000, maxMs: 10_000, signal: controller.signal },
    );
    setTimeout(() => controller.abort(), 20);
    await expect(p).rejects.toBe(deadlock);
    expect(calls).toBe(1);
    expect(Date.now() - started).toBeLessThan(2000);
  });
});
