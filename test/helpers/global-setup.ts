/**
 * Jest globalSetup of the `integration` project: starts ONE Redis and ONE
 * PostgreSQL for the whole run and publishes them to the test files as
 * TEST_REDIS_URL and TEST_DATABASE_URL (read them through test/helpers/isolation).
 *
 * REDIS_URL / DATABASE_URL, when set in the environment, are used instead of
 * starting servers (e.g. against docker-compose). Test files isolate themselves
 * with testNamespace() and createTestDatabase(); they must not restart these
 * shared servers: a test that restarts Redis starts its own with startRedis().
 */
import {
  reapLeftoverServers,
  startPostgres,
  startRedis,
  type PostgresServer,
  type RedisServer,
} from './servers';

export interface SharedServers {
  redis?: RedisServer;
  postgres?: PostgresServer;
}

/** Read by global-teardown.ts (globalSetup and globalTeardown share one process). */
export const SHARED_SERVERS_KEY = '__tradefleetTestServers__';

export default async function globalSetup(): Promise<void> {
  const reaped = await reapLeftoverServers();
  if (reaped.length > 0) console.warn(`\nreaped test servers left by a crashed run: ${reaped.join('; ')}`);

  const shared: SharedServers = {};
  (globalThis as Record<string, unknown>)[SHARED_SERVERS_KEY] = shared;

  const useRedis = process.env.REDIS_URL;
  const useDatabase = process.env.DATABASE_URL;
  const [redis, postgres] = await Promise.allSettled([
    useRedis ? Promise.resolve(undefined) : startRedis(),
    useDatabase ? Promise.resolve(undefined) : startPostgres(),
  ]);
  if (redis.status === 'fulfilled') shared.redis = redis.value;
  if (postgres.status === 'fulfilled') shared.postgres = postgres.value;
  const failures = [redis, postgres].filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failures.length > 0) {
    await Promise.allSettled([shared.redis?.stop(), shared.postgres?.stop()]);
    throw new Error(
      `could not start the test servers:\n${failures.map((f) => String(f.reason?.stack ?? f.reason)).join('\n\n')}`,
    );
  }

  // Workers the tests start (often several at once, in parallel test files)
  // would all bind the default METRICS_PORT; a test that wants /metrics sets a free port.
  process.env.METRICS_PORT ??= '0';

  process.env.TEST_REDIS_URL = useRedis ?? shared.redis?.url;
  process.env.TEST_DATABASE_URL = useDatabase ?? shared.postgres?.url;
}
