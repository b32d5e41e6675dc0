/**
 * Redis lost its lease epochs (e.g. restarted without persistence) while
 * PostgreSQL still holds the positions' lease_epoch: the first new lease is
 * fenced, the worker raises the Redis epoch to the stored one, and the next
 * lease commits. Without that, the partition would be fenced forever.
 */
import IORedis from 'ioredis';
import { Client } from 'pg';
import { canonicalTradeJson, partitionKey, payloadHash, validateTrade } from '../../src/domain';
import { createDb } from '../../src/db/client';
import { migrateToLatest } from '../../src/db/migrate';
import { PartitionQueue, QueueKeys } from '../../src/queue';
import { createTestDatabase, redisUrl, testNamespace, type TestDatabase } from '../helpers/isolation';
import { spawnCli, stopAll, waitFor } from '../helpers/processes';

let database: TestDatabase;
let redis: IORedis;
beforeAll(async () => {
  database = await createTestDatabase();
  const { db, close } = createDb({ databaseUrl: database.url, poolSize: 1 });
  await migrateToLatest(db).finally(close);
  redis = new IORedis(redisUrl(), { maxRetriesPerRequest: null });
});
afterAll(async () => {
  await stopAll();
  redis.disconnect();
  await database.drop();
});

function item(tradeId: string) {
  const v = validateTrade({
    tradeId,
    accountId: 'EPOCH',
    bookId: 'B',
    securityId: 'S',
    side: 'BUY',
    quantity: '1',
    price: '1',
    currency: 'USD',
    tradeTime: '2026-11-22T10:00:00Z',
    type: 'NEW',
  });
  if (!v.ok) throw new Error('bad trade');
  return {
    partitionKey: partitionKey('EPOCH', 'B', 'S'),
    tradeId,
    payloadHash: payloadHash(v.trade),
    body: canonicalTradeJson(v.trade),
  };
}

test('a partition whose Redis epochs were lost is fenced once, then drains again', async () => {
  const namespace = testNamespace('epoch-reset');
  const keys = new QueueKeys(namespace);
  const q = new PartitionQueue({ redis, namespace });
  const pk = partitionKey('EPOCH', 'B', 'S');
  const lastSeq = async () => {
    const c = new Client({ connectionString: database.url });
    await c.connect();
    const r = await c.query('select last_seq, lease_epoch from positions where partition_key = $1', [pk]);
    await c.end();
    return r.rows[0]
      ? { lastSeq: Number(r.rows[0].last_seq), epoch: Number(r.rows[0].lease_epoch) }
      : undefined;
  };
  spawnCli(['worker'], {
    REDIS_URL: redisUrl(),
    DATABASE_URL: database.url,
    TRADEFLEET_NAMESPACE: namespace,
    LOCK_DURATION_MS: '2000',
    STALLED_INTERVAL_MS: '1000',
  });
  // Several leases, so PostgreSQL's lease_epoch climbs above 1.
  for (let i = 1; i <= 5; i++) {
    await q.enqueue([item(`E${i}`)]);
    await waitFor(`trade ${i}`, async () => (await lastSeq())?.lastSeq === i, 20000);
  }
  const before = (await lastSeq())!;
  expect(before.epoch).toBeGreaterThan(2);

  await redis.del(keys.epochs); // Redis forgot every epoch: new leases start at 1 again
  await q.enqueue([item('E6'), item('E7')]);
  await waitFor('the partition to drain again', async () => (await lastSeq())?.lastSeq === 7, 30000);
  expect(Number(await redis.hget(keys.epochs, pk))).toBeGreaterThan(before.epoch);
});
