/**
 * The one factory that opens PostgreSQL connections. Only a main.ts (or runMigrate)
 * calls it, with pgConnection(config) from src/config/connections.ts for the URL,
 * password and TLS; everything else receives the Kysely instance.
 */
import type { ConnectionOptions } from 'node:tls';

import { Kysely, PostgresDialect } from 'kysely';
import { Pool, types as pgTypes, type CustomTypesConfig } from 'pg';
import type { Database } from './types';

const INT8_OID = 20;
const NUMERIC_OID = 1700;

const keepString = (value: string): string => value;

/**
 * bigint and numeric stay strings, whatever a library may have registered on the
 * global `pg.types`: numeric carries exact decimals, and int8 may exceed 2^53.
 * (These are pg's defaults; the per-pool parser makes it a guarantee.)
 */
export const typeParsers: CustomTypesConfig = {
  getTypeParser: (oid, format) =>
    (oid as number) === INT8_OID || (oid as number) === NUMERIC_OID
      ? keepString
      : pgTypes.getTypeParser(oid, format),
};

/** The narrow logger interface the pool needs. */
export interface DbLogger {
  warn(obj: object, msg: string): void;
}

export interface DbConfig {
  /** postgres:// URL, password included (build it with pgConnection in src/config/connections.ts). */
  readonly databaseUrl: string;
  /**
   * TLS: false for none, or Node TLS options (pgConnection derives them from
   * DATABASE_SSL_MODE). @default pg's own default (none unless the URL or PGSSLMODE asks)
   */
  readonly ssl?: false | ConnectionOptions;
  /** Maximum connections of the pool. */
  readonly poolSize: number;
  /** @default 'tradefleet' (shown in pg_stat_activity) */
  readonly applicationName?: string;
  /** Where idle-connection errors go (a server restart, a killed backend). @default ignored */
  readonly logger?: DbLogger;
}

export interface DbHandle {
  readonly db: Kysely<Database>;
  /** The underlying pool, for health checks and pool metrics; do not end it directly. */
  readonly pool: Pool;
  /** Ends the pool once; later calls return the same promise. */
  close(): Promise<void>;
}

export function createDb(config: DbConfig): DbHandle {
  const pool = new Pool({
    connectionString: config.databaseUrl,
    max: config.poolSize,
    application_name: config.applicationName ?? 'tradefleet',
    ...(config.ssl === undefined ? {} : { ssl: config.ssl }),
    types: typeParsers,
    // A connect to a host that silently drops packets must fail, not hang until
    // the OS gives up: the worker's circuit breaker only sees failures.
    connectionTimeoutMillis: 5000,
    // Notice half-open connections (a PostgreSQL host that vanished) on idle sockets.
    keepAlive: true,
  });
  // Without a listener, an error on an idle client (e.g. PostgreSQL restarting)
  // would be an unhandled 'error' event and crash the process. The next query
  // gets a fresh connection; the caller's retry logic handles its own failure.
  pool.on('error', (err) => config.logger?.warn({ err }, 'idle PostgreSQL connection failed'));
  // The pool listens only on idle clients. A checked-out client between two
  // statements of a transaction (kysely holds it) that loses its server would
  // emit an unhandled 'error' and crash the process; the statement in flight,
  // or the next one, fails on its own and the caller's retry handles it.
  pool.on('connect', (client) => {
    client.on('error', (err) => config.logger?.warn({ err }, 'PostgreSQL connection failed'));
  });

  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  let closing: Promise<void> | undefined;
  return {
    db,
    pool,
    close: () => (closing ??= db.destroy()),
  };
}
