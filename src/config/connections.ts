/**
 * The one place that turns a loaded configuration into connection options:
 * every Redis client and PostgreSQL pool of every process is built from these,
 * so a password, a CA or a TLS setting reaches all of them or none.
 *
 * A main.ts (or a CLI command) calls createRedis / pgConnection; everything
 * else receives the client (STYLE principle 1). This module is kept out of
 * src/config/index.ts so that loading a configuration does not load ioredis.
 */
import type { ConnectionOptions } from 'node:tls';

import IORedis, { type Redis, type RedisOptions } from 'ioredis';

import type { DatabaseConnectionConfig, RedisConnectionConfig } from './index';

/**
 * ioredis options for the configured Redis: host, port, database, user and
 * password from REDIS_URL, the password overridden by REDIS_PASSWORD(_FILE),
 * and for rediss:// TLS with the configured CA and verification.
 *
 * The URL is taken apart here rather than handed to ioredis, because ioredis
 * lets a password in the URL win over one given in the options.
 */
export function redisOptions(config: RedisConnectionConfig): RedisOptions {
  const u = new URL(config.redisUrl);
  const tls = u.protocol === 'rediss:';
  const db = u.pathname.replace(/^\//, '');
  const username = decodeURIComponent(u.username);
  const password = config.redisPassword ?? decodeURIComponent(u.password);
  const options: RedisOptions = {
    host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: u.port === '' ? 6379 : Number(u.port),
    ...(/^\d+$/.test(db) ? { db: Number(db) } : {}),
    ...(username ? { username } : {}),
    ...(password ? { password } : {}),
  };
  if (tls) {
    options.tls = {
      rejectUnauthorized: config.redisTls.rejectUnauthorized,
      ...(config.redisTls.caPem === undefined ? {} : { ca: config.redisTls.caPem }),
    };
  }
  return options;
}

/**
 * A Redis client for the configured server. `extra` adds per-process behaviour
 * (retries, timeouts, a connection name); it cannot change where the client
 * connects or how it authenticates.
 */
export function createRedis(config: RedisConnectionConfig, extra: RedisOptions = {}): Redis {
  return new IORedis({ ...extra, ...redisOptions(config) });
}

/** What createDb (src/db/client.ts) needs to reach the configured PostgreSQL. */
export interface PgConnection {
  /** DATABASE_URL with the password of DATABASE_PASSWORD(_FILE) put in: never log it. */
  readonly databaseUrl: string;
  /** pg's `ssl` option: false, or the TLS options of DATABASE_SSL_MODE. */
  readonly ssl: false | ConnectionOptions;
}

/**
 * TLS options for PostgreSQL from DATABASE_SSL_MODE:
 * - `disable`: none;
 * - `require`: encrypted, the certificate not checked (libpq's `require`);
 * - `verify-full`: the certificate must chain to the CA (DATABASE_SSL_CA_FILE, else
 *   Node's built-in list) and name the host.
 */
export function pgSsl(config: DatabaseConnectionConfig): false | ConnectionOptions {
  switch (config.databaseSsl.mode) {
    case 'disable':
      return false;
    case 'require':
      return { rejectUnauthorized: false };
    case 'verify-full':
      return {
        rejectUnauthorized: true,
        ...(config.databaseSsl.caPem === undefined ? {} : { ca: config.databaseSsl.caPem }),
      };
  }
}

/**
 * The connection of a pool. The password goes into the URL because pg lets
 * the URL's password (even an empty one) win over a `password` option;
 * DATABASE_URL carries no ssl parameters (the configuration refuses them), so
 * the `ssl` option is the one that applies.
 */
export function pgConnection(config: DatabaseConnectionConfig): PgConnection {
  let databaseUrl = config.databaseUrl;
  if (config.databasePassword !== undefined) {
    const u = new URL(config.databaseUrl);
    u.password = encodeURIComponent(config.databasePassword);
    databaseUrl = u.toString();
  }
  return { databaseUrl, ssl: pgSsl(config) };
}
