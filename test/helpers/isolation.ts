/**
 * Per-test-file isolation on the shared servers started by global-setup.ts:
 * a unique Redis key namespace, a fresh PostgreSQL database.
 */
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

function requireEnv(name: 'TEST_REDIS_URL' | 'TEST_DATABASE_URL'): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: run this test in the jest "integration" project (npm run test:integration), ` +
        'whose globalSetup starts the servers',
    );
  }
  return value;
}

/** URL of the run's shared Redis. */
export function redisUrl(): string {
  return requireEnv('TEST_REDIS_URL');
}

/** URL of the run's shared PostgreSQL server, connected to its maintenance database. */
export function adminDatabaseUrl(): string {
  return requireEnv('TEST_DATABASE_URL');
}

const suffix = (bytes = 4) => randomBytes(bytes).toString('hex');

/**
 * A unique queue namespace, e.g. `t-ordering-1f2e3d4c`: only [a-z0-9-] and at most
 * 40 characters, so it is a valid TRADEFLEET_NAMESPACE.
 */
export function testNamespace(label: string): string {
  const clean =
    label
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 29) || 'x';
  return `t-${clean}-${suffix()}`;
}

export interface TestDatabase {
  /** URL of the new, empty database. */
  readonly url: string;
  readonly name: string;
  /** Drops the database, disconnecting whoever is still connected. Idempotent. */
  drop(): Promise<void>;
}

async function admin<T>(fn: (c: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: adminDatabaseUrl() });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** CREATE DATABASE tf_<random> on the shared server. Drop it in afterAll. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `tf_${suffix(6)}`;
  await admin((c) => c.query(`create database ${name}`));
  const u = new URL(adminDatabaseUrl());
  u.pathname = `/${name}`;
  let dropped: Promise<void> | undefined;
  return {
    url: u.toString(),
    name,
    drop: () =>
      (dropped ??= admin(async (c) => {
        await c.query(`drop database if exists ${name} with (force)`);
      })),
  };
}
