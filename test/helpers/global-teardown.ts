/**
 * Jest globalTeardown of the `integration` project: stops what global-setup.ts
 * started, then kills any server a test file started and forgot to stop (Jest has
 * ended its workers by now, so every server still registered by this run is a leak).
 */
import { SHARED_SERVERS_KEY, type SharedServers } from './global-setup';
import { reapLeftoverServers } from './servers';

export default async function globalTeardown(): Promise<void> {
  const shared = (globalThis as Record<string, unknown>)[SHARED_SERVERS_KEY] as SharedServers | undefined;
  if (!shared) return;
  const results = await Promise.allSettled([shared.redis?.stop(), shared.postgres?.stop()]);
  delete (globalThis as Record<string, unknown>)[SHARED_SERVERS_KEY];
  const leaked = await reapLeftoverServers({ includeOwn: true });
  if (leaked.length > 0) {
    console.warn(
      `\ntest servers left running by test files (stop them in afterAll), now killed: ${leaked.join('; ')}`,
    );
  }
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed.length > 0)
    throw new Error(`stopping the test servers failed: ${failed.map((f) => String(f.reason)).join('; ')}`);
}
