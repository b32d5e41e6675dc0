/**
 * `tradefleet dev --autoscale`: the local stand-in for KEDA reads the
 * synthesized ScaledObject (charts/dev), polls the queue's signals and starts
 * or drains worker processes. A burst over 1,000 partitions scales the workers
 * out to the chart's cap, the fleet drains it, and the workers scale back to
 * zero, with nothing lost and every partition applied in order.
 */
import { Client } from 'pg';
import IORedis from 'ioredis';
import { canonicalDecimalString } from '../../src/domain';
import { QueueKeys, readSignals } from '../../src/queue';
import { loadScaledObjectModel } from '../../src/scaling';
import { createTestDatabase, redisUrl, testNamespace } from '../helpers/isolation';
import { exitCode, outputOf, spawnCli, stopAll, waitFor } from '../helpers/processes';
import { freePort } from '../helpers/servers';
import { expectedPositions, generateTrades } from '../helpers/trades';

jest.setTimeout(240_000);
afterEach(() => stopAll(15_000));

const replicaChanges = (out: string) =>
  [...out.matchAll(/\[autoscale\] replicas (\d+) -> (\d+) \((\w+)/g)].map((m) => ({
    from: Number(m[1]),
    to: Number(m[2]),
    reason: m[3]!,
  }));

test('burst: scale out to the cap, drain, scale back to zero; nothing lost, order kept', async () => {
  const model = loadScaledObjectModel('charts/dev');
  const database = await createTestDatabase();
  const redis = new IORedis(redisUrl(), { maxRetriesPerRequest: null });
  try {
    const port = await freePort();
    const namespace = testNamespace('autoscale');
    const env = {
      REDIS_URL: redisUrl(),
      DATABASE_URL: database.url,
      TRADEFLEET_NAMESPACE: namespace,
      LOG_LEVEL: 'warn',
    };
    // Clocks x10: polling 5 s -> 0.5 s, cooldown 30 s -> 3 s, windows likewise.
    const dev = spawnCli(['dev', '--autoscale', '--speed', '10', '--port', String(port)], env);
    await waitFor(
      'tradefleet dev to be up',
      () => outputOf(dev).includes('tradefleet dev is up'),
      90_000,
      200,
    );
    await new Promise((r) => setTimeout(r, 1000));
    expect(replicaChanges(outputOf(dev))).toEqual([]); // idle: zero workers

    // chainRate: AMEND/CANCEL chains too, and a generator that spreads the trades over all 1,000 partitions.
    const { trades } = generateTrades(40_000, 1000, 3, 'S', { chainRate: 0.1 });
    const seqs = new Map<string, number>();
    for (let i = 0; i < trades.length; i += 1000) {
      const res = await fetch(`http://127.0.0.1:${port}/v1/trades/batch`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ trades: trades.slice(i, i + 1000) }),
      });
      const body = (await res.json()) as { results: { tradeId: string; seq: number }[] };
      for (const r of body.results) seqs.set(r.tradeId, r.seq);
    }
    const keys = new QueueKeys(namespace);
    await waitFor(
      'the workers to reach the cap',
      () => replicaChanges(outputOf(dev)).some((c) => c.to === model.maxReplicaCount),
      60_000,
      200,
    );
    await waitFor(
      'the burst to drain',
      async () => (await readSignals(redis, keys)).backlog === 0,
      120_000,
      200,
    );
    await waitFor(
      'the workers to scale back to zero',
      () => replicaChanges(outputOf(dev)).some((c) => c.to === 0 && c.reason === 'deactivate'),
      60_000,
      200,
    );

    const changes = replicaChanges(outputOf(dev));
    expect(changes[0]).toMatchObject({ from: 0, reason: 'activate' });
    expect(Math.max(...changes.map((c) => c.to))).toBe(model.maxReplicaCount);
    expect(changes[changes.length - 1]).toMatchObject({ to: 0, reason: 'deactivate' });
    expect(outputOf(dev)).not.toMatch(/exited unexpectedly/);

    const expected = expectedPositions(trades, seqs);
    const db = new Client({ connectionString: database.url });
    await db.connect();
    const rows = (
      await db.query('select partition_key, last_seq, trade_count, digest, net_quantity from positions')
    ).rows;
    await db.end();
    expect(rows).toHaveLength(expected.size);
    const wrong = rows.filter((r) => {
      const p = expected.get(r.partition_key)!.position;
      return (
        Number(r.last_seq) !== p.lastSeq ||
        Number(r.trade_count) !== p.tradeCount ||
        r.digest !== p.digest ||
        canonicalDecimalString(r.net_quantity) !== p.netQuantity
      );
    });
    expect(wrong).toEqual([]);

    dev.kill('SIGINT');
    expect(await exitCode(dev)).toBe(0);
  } finally {
    redis.disconnect();
    await database.drop();
  }
});
