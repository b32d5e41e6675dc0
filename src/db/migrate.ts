/**
 * Schema migrations, run as their own step (`tradefleet migrate`, a Kubernetes Job),
 * never on every pod start.
 *
 * kysely's Migrator takes a PostgreSQL advisory lock and runs all pending
 * migrations in one transaction, so concurrent runs serialize and a failed run
 * leaves nothing half-applied. Migrations may not be applied out of order.
 */
import { sql, type Kysely } from 'kysely';
import { Migrator, type Migration, type MigrationResult } from 'kysely';
import { loadMigrateConfig, type Env } from '../config';
import { pgConnection } from '../config/connections';
import { createLogger, type Logger } from '../observability/logger';
import { createDb } from './client';
import { migrations as allMigrations } from './migrations';

export { migrations } from './migrations';

export const MIGRATION_TABLE = 'kysely_migration';

export interface MigrateResult {
  /** Migrations applied by this run, in order; empty when the schema was already current. */
  readonly applied: readonly string[];
  /** The newest migration now applied, or undefined when there are none. */
  readonly current: string | undefined;
}

export class MigrationError extends Error {
  override readonly name: string = 'MigrationError';
}

/** The database was migrated by a newer tradefleet: this build must not touch it. */
export class UnknownMigrationError extends MigrationError {
  override readonly name = 'UnknownMigrationError';
  constructor(
    readonly unknown: readonly string[],
    readonly known: readonly string[],
  ) {
    super(
      `The database has migration(s) this build does not know: ${unknown.join(', ')} ` +
        `(this build knows: ${known.join(', ') || 'none'}). It was migrated by a newer tradefleet. ` +
        `Fix: run the newer version, or restore a backup taken before that migration; never delete rows from ${MIGRATION_TABLE}.`,
    );
  }
}

/** A migration failed; its transaction was rolled back, so none of this run's migrations are applied. */
export class MigrationFailedError extends MigrationError {
  override readonly name = 'MigrationFailedError';
  constructor(
    readonly migration: string | undefined,
    cause: unknown,
  ) {
    super(
      `Migration ${migration ?? '(before any migration ran)'} failed: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
  }
}

/** Names of the migrations recorded in the database, or [] when it was never migrated. */
export async function appliedMigrations<DB>(db: Kysely<DB>): Promise<string[]> {
  const exists = await sql<{ t: string | null }>`select to_regclass(${MIGRATION_TABLE}) as t`.execute(db);
  if (!exists.rows[0]?.t) return [];
  const rows = await sql<{
    name: string;
  }>`select name from ${sql.table(MIGRATION_TABLE)} order by name`.execute(db);
  return rows.rows.map((r) => r.name);
}

const MISSING = /previously executed migration (\S+) is missing/;

/**
 * Applies every pending migration. Re-running is a no-op. Refuses (UnknownMigrationError)
 * a database carrying a migration this code does not know.
 *
 * @param db any Kysely instance; migrations do not depend on the current table types.
 * @param available @default the migrations of this build (tests pass others)
 */
export async function migrateToLatest<DB>(
  db: Kysely<DB>,
  available: Readonly<Record<string, Migration>> = allMigrations,
): Promise<MigrateResult> {
  const known = Object.keys(available).sort();

  // kysely refuses too (inside its lock), but with a terse "corrupted migrations" message
  // naming one migration; check first to name them all and say what to do.
  const unknown = (await appliedMigrations(db)).filter((name) => !known.includes(name));
  if (unknown.length > 0) throw new UnknownMigrationError(unknown, known);

  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => ({ ...available }) },
    allowUnorderedMigrations: false,
  });
  const { error, results = [] } = await migrator.migrateToLatest();
  if (error !== undefined) {
    const message = error instanceof Error ? error.message : String(error);
    const missing = MISSING.exec(message)?.[1];
    if (missing !== undefined) throw new UnknownMigrationError([missing], known);
    const failed = results.find((r: MigrationResult) => r.status === 'Error')?.migrationName;
    throw new MigrationFailedError(failed, error);
  }
  const applied = results.filter((r: MigrationResult) => r.status === 'Success').map((r) => r.migrationName);
  const now = await appliedMigrations(db);
  return Object.freeze({ applied: Object.freeze(applied), current: now[now.length - 1] });
}

/**
 * `tradefleet migrate`: loads the migrate configuration from `env`, migrates,
 * logs the result and closes the pool. Throws (after logging) on failure; the
 * CLI turns that into a non-zero exit code.
 */
export async function runMigrate(
  env: Env = process.env,
  deps: { readonly logger?: Logger } = {},
): Promise<MigrateResult> {
  const config = loadMigrateConfig(env);
  const logger = deps.logger ?? createLogger({ level: config.logLevel, name: 'tradefleet-migrate' });
  // The Migrator holds one connection for its lock and transaction; one more for its checks.
  const handle = createDb({ ...pgConnection(config), poolSize: 2, logger });
  try {
    const result = await migrateToLatest(handle.db);
    logger.info(
      { applied: result.applied, current: result.current },
      result.applied.length === 0
        ? `schema already current at ${result.current ?? '(none)'}`
        : `applied ${result.applied.length} migration(s); schema now at ${result.current}`,
    );
    return result;
  } catch (err) {
    logger.error({ err }, 'migration failed');
    throw err;
  } finally {
    await handle.close();
  }
}
