/**
 * src/db against the harness's real PostgreSQL; every test on a fresh database.
 */
import { Writable } from 'node:stream';
import { sql, type Kysely } from 'kysely';
import { Migrator, NO_MIGRATIONS, type Migration } from 'kysely';
import { ConfigError } from '../../src/config';
import {
  createDb,
  getPosition,
  getTrade,
  insertTrade,
  lockPositionsAndFindKnown,
  migrateToLatest,
  migrations,
  MigrationFailedError,
  runMigrate,
  UnknownMigrationError,
  upsertPosition,
  writeLockedPosition,
  type DbHandle,
  type NewPositionRecord,
  type NewTradeRecord,
} from '../../src/db';
import { emptyPosition } from '../../src/domain';
import { createLogger } from '../../src/observability/logger';
import { createTestDatabase, type TestDatabase } from '../helpers/isolation';

const LATEST = Object.keys(migrations).sort();

const databases: TestDatabase[] = [];
const handles: DbHandle[] = [];

async function freshDb(poolSize = 4): Promise<{ database: TestDatabase; handle: DbHandle }> {
  const database = await createTestDatabase();
  databases.push(database);
  const handle = createDb({ databaseUrl: database.url, poolSize });
  handles.push(handle);
  return { database, handle };
}

afterAll(async () => {
  await Promise.all(handles.map((h) => h.close()));
  await Promise.all(databases.map((d) => d.drop()));
});

/** Everything that makes up the public schema, in a comparable form. */
async function schemaSnapshot(db: Kysely<unknown>) {
  const columns = await sql`
    select table_name, column_name, data_type, is_nullable, column_default
    from information_schema.columns where table_schema = 'public'
    order by table_name, ordinal_position`.execute(db);
  const constraints = await sql`
    select conrelid::regclass::text as table_name, conname, pg_get_constraintdef(oid) as def
    from pg_constraint where connamespace = 'public'::regnamespace
    order by conname`.execute(db);
  const indexes = await sql`
    select indexname, indexdef from pg_indexes where schemaname = 'public' order by indexname`.execute(db);
  return { columns: columns.rows, constraints: constraints.rows, indexes: indexes.rows };
}

async function migrationRows(db: Kysely<unknown>): Promise<string[]> {
  const r = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db);
  return r.rows.map((x) => x.name);
}

async function tableExists(db: Kysely<unknown>, name: string): Promise<boolean> {
  const r = await sql<{ t: string | null }>`select to_regclass(${name}) as t`.execute(db);
  return r.rows[0]?.t != null;
}

describe('migrations', () => {
  test('migrate from empty applies every migration; a second run applies nothing and changes nothing', async () => {
    const { handle } = await freshDb();
    const db = handle.db as Kysely<unknown>;

    const first = await migrateToLatest(db);
    expect(first.applied).toEqual(LATEST);
    expect(first.current).toBe(LATEST[LATEST.length - 1]);
    const before = await schemaSnapshot(db);
    for (const t of ['positions', 'trades', 'dead_letters']) expect(await tableExists(db, t)).toBe(true);
    expect(before.constraints).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          conname: 'trades_partition_key_seq_key',
          def: 'UNIQUE (partition_key, seq)',
        }),
        expect.objectContaining({
          conname: 'dead_letters_pkey',
          def: 'PRIMARY KEY (partition_key, seq)',
        }),
      ]),
    );
    // 0003 dropped the redundant (partition_key, trade_id) index; the unique (partition_key, seq) one serves.
    expect(before.indexes).not.toEqual(
      expect.arrayContaining([expect.objectContaining({ indexname: 'trades_partition_key_trade_id_idx' })]),
    );

    const second = await migrateToLatest(db);
    expect(second.applied).toEqual([]);
    expect(second.current).toBe(first.current);
    expect(await schemaSnapshot(db)).toEqual(before);
    expect(await migrationRows(db)).toEqual(LATEST);
  });

  test('every migration has a working down: migrate to nothing and back up', async () => {
    const { handle } = await freshDb();
    const db = handle.db as Kysely<unknown>;
    await migrateToLatest(db);
    const up = await schemaSnapshot(db);

    const migrator = new Migrator({ db, provider: { getMigrations: async () => ({ ...migrations }) } });
    const down = await migrator.migrateTo(NO_MIGRATIONS);
    expect(down.error).toBeUndefined();
    for (const t of ['positions', 'trades', 'dead_letters']) expect(await tableExists(db, t)).toBe(false);

    expect((await migrateToLatest(db)).applied).toEqual(LATEST);
    expect(await schemaSnapshot(db)).toEqual(up);
  });

  test('refuses a database carrying a migration this build does not know (a newer schema)', async () => {
    const { handle } = await freshDb();
    const db = handle.db as Kysely<unknown>;
    await migrateToLatest(db);
    await sql`insert into kysely_migration (name, timestamp) values ('9999_from_a_newer_build', ${new Date().toISOString()})`.execute(
      db,
    );
    // A pending migration of this build must not be applied on top of the unknown schema.
    const probe: Migration = {
      up: async (d) => void (await d.schema.createTable('probe').addColumn('id', 'integer').execute()),
    };
    const available = { ...migrations, '0999_probe': probe };

    const refusal = migrateToLatest(db, available);
    await expect(refusal).rejects.toThrow(UnknownMigrationError);
    await expect(refusal).rejects.toThrow(/9999_from_a_newer_build/);
    await expect(refusal).rejects.toMatchObject({ unknown: ['9999_from_a_newer_build'] });
    expect(await tableExists(db, 'probe')).toBe(false);

    // kysely refuses on its own too (inside its lock), which covers a newer build
    // migrating between our check and kysely's.
    const raw = await new Migrator({
      db,
      provider: { getMigrations: async () => available },
      allowUnorderedMigrations: false,
    }).migrateToLatest();
    expect(String(raw.error)).toMatch(/previously executed migration 9999_from_a_newer_build is missing/);
    expect(await tableExists(db, 'probe')).toBe(false);
  });

  test('concurrent migrateToLatest from several pools applies each migration exactly once', async () => {
    const { database } = await freshDb(1);
    // A slow migration widens the window in which the runs overlap.
    const slow: Migration = {
      up: async (d) => {
        await sql`select pg_sleep(0.3)`.execute(d);
        await d.schema.createTable('slow_probe').addColumn('id', 'integer').execute();
      },
    };
    const available = { ...migrations, '0998_slow': slow };
    const pools = Array.from({ length: 4 }, () => {
      const h = createDb({ databaseUrl: database.url, poolSize: 3 });
      handles.push(h);
      return h.db as Kysely<unknown>;
    });

    const results = await Promise.all(pools.map((db) => migrateToLatest(db, available)));

    const applied = results.flatMap((r) => r.applied).sort();
    expect(applied).toEqual(Object.keys(available).sort());
    for (const r of results) expect(r.current).toBe('0998_slow');
    expect(await migrationRows(pools[0]!)).toEqual(Object.keys(available).sort());
  });

  test('a failing migration rolls back the whole run and names the migration', async () => {
    const { handle } = await freshDb();
    const db = handle.db as Kysely<unknown>;
    const broken: Migration = {
      up: async (d) => {
        await d.schema.createTable('half_done').addColumn('id', 'integer').execute();
        throw new Error('boom');
      },
    };

    const run = migrateToLatest(db, { ...migrations, '0997_broken': broken });
    await expect(run).rejects.toThrow(MigrationFailedError);
    await expect(run).rejects.toMatchObject({ migration: '0997_broken' });
    await expect(run).rejects.toThrow(/boom/);
    // One transaction: neither the broken migration nor the ones before it remain.
    expect(await tableExists(db, 'half_done')).toBe(false);
    expect(await tableExists(db, 'positions')).toBe(false);
  });
});

describe('runMigrate', () => {
  test('loads config from env, migrates, logs the result and closes its pool', async () => {
    const database = await createTestDatabase();
    databases.push(database);
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const logger = createLogger({ level: 'info', name: 'test', destination });

    const result = await runMigrate({ DATABASE_URL: database.url }, { logger });
    expect(result.applied).toEqual(LATEST);
    expect((await runMigrate({ DATABASE_URL: database.url }, { logger })).applied).toEqual([]);

    const logged = lines.map((l) => JSON.parse(l) as { msg: string; applied: string[] });
    expect(logged[0]).toMatchObject({ applied: LATEST });
    expect(logged[1]?.msg).toMatch(/already current/);
  });

  test('reports bad configuration before connecting, with the password masked', async () => {
    const run = runMigrate({ DATABASE_URL: 'mysql://admin:s3cret@db:3306/x', LOG_LEVEL: 'loud' });
    await expect(run).rejects.toThrow(ConfigError);
    await expect(run).rejects.toMatchObject({
      problems: [
        expect.objectContaining({ variable: 'DATABASE_URL' }),
        expect.objectContaining({ variable: 'LOG_LEVEL' }),
      ],
    });
    await expect(run).rejects.not.toThrow(/s3cret/);
  });
});

describe('repositories', () => {
  let handle: DbHandle;

  beforeAll(async () => {
    ({ handle } = await freshDb());
    await migrateToLatest(handle.db as Kysely<unknown>);
  });

  const partitionKey = 'ACC-1_BOOK-1_SEC-1';
  const trade: NewTradeRecord = {
    tradeId: 'T-1',
    partitionKey,
    seq: 1,
    type: 'NEW',
    refTradeId: null,
    accountId: 'ACC-1',
    bookId: 'BOOK-1',
    securityId: 'SEC-1',
    side: 'BUY',
    quantity: '12345678901234.123456789012',
    price: '0.000000000000000001',
    currency: 'EUR',
    tradeTime: '2024-03-01T10:15:30.123456+01:00',
    payload: { tradeId: 'T-1', quantity: '12345678901234.123456789012', nested: { list: [1, 'two', null] } },
    payloadHash: 'sha256:abc',
    enqueuedAt: new Date('2024-03-01T09:15:31.000Z'),
    effSide: 'BUY',
    effQuantity: '12345678901234.123456789012',
    effPrice: '0.000000000000000001',
    effCurrency: 'EUR',
    status: 'live',
  };

  test('a trade round-trips with exact decimals, its payload and its timestamps', async () => {
    const inserted = await insertTrade(handle.db, trade);
    const read = await getTrade(handle.db, 'T-1');

    expect(read).toEqual(inserted);
    expect(read).toMatchObject({
      seq: 1,
      quantity: '12345678901234.123456789012',
      price: '0.000000000000000001',
      effQuantity: '12345678901234.123456789012',
      payload: trade.payload,
      status: 'live',
    });
    expect(read!.tradeTime.toISOString()).toBe('2024-03-01T09:15:30.123Z');
    const micros = await sql<{
      t: string;
    }>`select to_char(trade_time at time zone 'UTC', 'US') as t from trades`.execute(handle.db);
    expect(micros.rows[0]?.t).toBe('123456');
    expect(read!.appliedAt).toBeInstanceOf(Date);
    expect(await getTrade(handle.db, 'missing')).toBeUndefined();
  });

  test('a second trade with the same (partition_key, seq) is rejected', async () => {
    await expect(insertTrade(handle.db, { ...trade, tradeId: 'T-dup' })).rejects.toMatchObject({
      code: '23505',
    });
  });

  test('a position round-trips exactly and is never moved backwards', async () => {
    const position: NewPositionRecord = {
      partitionKey,
      accountId: 'ACC-1',
      bookId: 'BOOK-1',
      securityId: 'SEC-1',
      currency: 'EUR',
      netQuantity: '-12345678901234.123456789012',
      boughtQuantity: '0',
      soldQuantity: '12345678901234.123456789012',
      boughtNotional: '0',
      soldNotional: '0.012345678901234123456789012',
      tradeCount: 7,
      lastSeq: 7,
      digest: 'd7',
      leaseEpoch: 3,
    };
    expect(await upsertPosition(handle.db, position)).toBe(true);
    expect(await getPosition(handle.db, partitionKey)).toMatchObject(position);

    // A stale writer (lower last_seq, or an older lease epoch) changes nothing.
    expect(await upsertPosition(handle.db, { ...position, lastSeq: 6, digest: 'stale' })).toBe(false);
    expect(
      await upsertPosition(handle.db, { ...position, lastSeq: 8, leaseEpoch: 2, digest: 'zombie' }),
    ).toBe(false);
    expect(await getPosition(handle.db, partitionKey)).toMatchObject({
      lastSeq: 7,
      digest: 'd7',
      leaseEpoch: 3,
    });

    const next = {
      ...position,
      lastSeq: 9,
      tradeCount: 9,
      digest: 'd9',
      netQuantity: '0.000000000000000000000001',
    };
    expect(await upsertPosition(handle.db, next)).toBe(true);
    const read = await getPosition(handle.db, partitionKey);
    expect(read).toMatchObject(next);
    expect(read!.updatedAt).toBeInstanceOf(Date);
    expect(await getPosition(handle.db, 'nope')).toBeUndefined();
  });

  test('columns default as documented: zero decimals, empty digest, epoch 0', async () => {
    await handle.db
      .insertInto('positions')
      .values({ partition_key: 'A_B_C', account_id: 'A', book_id: 'B', security_id: 'C' })
      .execute();
    expect(await getPosition(handle.db, 'A_B_C')).toMatchObject({
      netQuantity: '0',
      boughtNotional: '0',
      tradeCount: 0,
      lastSeq: 0,
      digest: '',
      leaseEpoch: 0,
      currency: null,
    });
  });

  test('bigint columns come back as strings and convert only when safe', async () => {
    await sql`update positions set trade_count = 9007199254740993 where partition_key = 'A_B_C'`.execute(
      handle.db,
    );
    const raw = await handle.db
      .selectFrom('positions')
      .select('trade_count')
      .where('partition_key', '=', 'A_B_C')
      .executeTakeFirstOrThrow();
    expect(raw.trade_count).toBe('9007199254740993');
    await expect(getPosition(handle.db, 'A_B_C')).rejects.toThrow(/positions.trade_count=9007199254740993/);
  });

  test('the schema enforces the trade type rules', async () => {
    const amendWithoutRef = {
      ...trade,
      tradeId: 'T-2',
      seq: 2,
      type: 'AMEND' as const,
      status: 'amend' as const,
    };
    await expect(
      insertTrade(handle.db, {
        ...amendWithoutRef,
        effSide: null,
        effQuantity: null,
        effPrice: null,
        effCurrency: null,
      }),
    ).rejects.toMatchObject({
      code: '23514',
      constraint: 'trades_ref_matches_type',
    });
    await expect(
      insertTrade(handle.db, { ...trade, tradeId: 'T-3', seq: 3, status: 'amend' }),
    ).rejects.toMatchObject({
      constraint: 'trades_status_matches_type',
    });
  });

  test('lockPositionsAndFindKnown: after waiting for a lock, it sees what the lock holder committed', async () => {
    // READ COMMITTED: a lock that waited returns the row as the other
    // transaction committed it, while a lookup in the same statement reads
    // the snapshot taken before the wait. The function must notice and look
    // up again, or a trade the holder just applied would look unknown.
    const base = { ...emptyPosition('ACC-9', 'BOOK-9', 'SEC-9'), currency: 'EUR', leaseEpoch: 1 };
    const pk = base.partitionKey;
    await upsertPosition(handle.db, base);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const lockTaken = new Promise<void>((r) => (locked = r));
    const holder = handle.db.transaction().execute(async (trx) => {
      await lockPositionsAndFindKnown(trx, [pk], []);
      locked();
      await held;
      await insertTrade(trx, {
        ...trade,
        tradeId: 'T-held',
        partitionKey: pk,
        seq: 1,
        accountId: 'ACC-9',
        bookId: 'BOOK-9',
        securityId: 'SEC-9',
      });
      await writeLockedPosition(trx, { ...base, lastSeq: 1, tradeCount: 1, leaseEpoch: 2 });
    });
    await lockTaken;
    const waiter = handle.db.transaction().execute((trx) => lockPositionsAndFindKnown(trx, [pk], ['T-held']));
    // The waiter is blocked on the row lock; let the holder commit.
    await new Promise((r) => setTimeout(r, 200));
    release();
    await holder;
    const seen = await waiter;
    expect(seen.positions.map((p) => [p.partitionKey, p.lastSeq, p.leaseEpoch])).toEqual([[pk, 1, 2]]);
    expect(seen.known.map((k) => [k.source, k.tradeId, k.partitionKey, k.seq])).toEqual([
      ['trade', 'T-held', pk, 1],
    ]);
  });
});
