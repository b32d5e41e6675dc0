/**
 * The queue core in one process against a real Redis: duplicates, retries that
 * keep order, head-of-line isolation, lease fencing, the reconciler, operator
 * halts, signals that stay exact, and Lua scripts that survive SCRIPT FLUSH.
 */
import IORedis from 'ioredis';
import {
  HaltPartitionError,
  PartitionAdmin,
  PartitionConsumer,
  PartitionQueue,
  QueueKeys,
  Reconciler,
  readHead,
  readSignals,
  withScripts,
  BacklogFullError,
  type Batch,
  type ConsumerEvent,
  type EnqueueItem,
} from '../../src/queue';
import { redisUrl, testNamespace } from '../helpers/isolation';
import { startRedis } from '../helpers/servers';
import { waitFor } from '../helpers/processes';

let redis: IORedis;
const open: { close(): Promise<void> }[] = [];

beforeAll(() => {
  redis = new IORedis(redisUrl(), { maxRetriesPerRequest: null });
});
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});
afterAll(() => redis.quit());

const item = (partitionKey: string, tradeId: string, payloadHash = 'h'): EnqueueItem => ({
  partitionKey,
  tradeId,
  payloadHash,
  body: JSON.stringify({ tradeId }),
});

function queue(namespace: string, extra: Partial<ConstructorParameters<typeof PartitionQueue>[0]> = {}) {
  const q = new PartitionQueue({ redis, namespace, ...extra });
  return q;
}

function consumer(
  namespace: string,
  handler: (b: Batch) => Promise<void>,
  extra: Partial<ConstructorParameters<typeof PartitionConsumer>[0]> = {},
) {
  const c = new PartitionConsumer({
    redis,
    namespace,
    handler,
    concurrency: 4,
    batchSize: 4,
    budget: 8,
    lockDurationMs: 2000,
    stalledIntervalMs: 1000,
    retry: { baseMs: 50, maxMs: 400 },
    ...extra,
  });
  open.push(c);
  return c;
}

test('dedup: the same tradeId twice gives one entry; the same id with another payload is a conflict', async () => {
  const ns = testNamespace('dedup');
  const q = queue(ns);
  const [a] = await q.enqueue([item('P', 'T1', 'hash-a')]);
  expect(a).toEqual({ status: 'queued', seq: 1 });
  const again = await q.enqueue([item('P', 'T1', 'hash-a'), item('P', 'T1', 'hash-b'), item('P', 'T2', 'x')]);
  expect(again).toEqual([
    { status: 'duplicate', seq: 1 },
    { status: 'conflict', seq: 1 },
    { status: 'queued', seq: 2 },
  ]);
  expect((await readHead(redis, q.keys, 'P')).map((i) => i.tradeId)).toEqual(['T1', 'T2']);
  expect((await readSignals(redis, q.keys)).backlog).toBe(2);

  // Still recognised after it was applied (within the dedup window).
  const seen: string[] = [];
  consumer(ns, async (b) => void seen.push(...b.items.map((i) => i.tradeId)));
  await waitFor('drain', async () => (await readSignals(redis, q.keys)).backlog === 0);
  expect(await q.enqueue([item('P', 'T1', 'hash-a'), item('P', 'T2', 'y')])).toEqual([
    { status: 'duplicate', seq: 1 },
    { status: 'conflict', seq: 2 },
  ]);
  expect(seen).toEqual(['T1', 'T2']);
});

test('backpressure: an enqueue that would pass the backlog limit is refused whole', async () => {
  const ns = testNamespace('backlog');
  const q = queue(ns, { maxBacklog: 3 });
  await q.enqueue([item('P', 'A'), item('P', 'B')]);
  await expect(q.enqueue([item('P', 'C'), item('Q', 'D')])).rejects.toBeInstanceOf(BacklogFullError);
  expect((await readSignals(redis, q.keys)).backlog).toBe(2);
  expect((await readHead(redis, q.keys, 'Q')).length).toBe(0);
  expect(await q.enqueue([item('P', 'C')])).toEqual([{ status: 'queued', seq: 3 }]);
});

test('retry-keeps-order: a trade that fails twice then succeeds is processed before its successors; another partition goes on meanwhile', async () => {
  const ns = testNamespace('retry');
  const q = queue(ns);
  const applied: string[] = [];
  let failures = 0;
  let otherDoneWhileFailing = false;
  consumer(
    ns,
    async (b) => {
      for (const it of b.items) {
        if (it.tradeId === 'A2' && failures < 2) {
          failures++;
          throw new Error('transient');
        }
        if (b.partitionKey === 'B' && failures > 0 && failures < 2) otherDoneWhileFailing = true;
      }
      applied.push(...b.items.map((i) => i.tradeId));
    },
    { batchSize: 1, retry: { baseMs: 300, maxMs: 300 } },
  );
  await q.enqueue([
    item('A', 'A1'),
    item('A', 'A2'),
    item('A', 'A3'),
    ...['B1', 'B2', 'B3'].map((t) => item('B', t)),
  ]);
  await waitFor('drain', async () => (await readSignals(redis, q.keys)).backlog === 0, 10000);
  expect(failures).toBe(2);
  expect(applied.filter((t) => t.startsWith('A'))).toEqual(['A1', 'A2', 'A3']);
  expect(applied.filter((t) => t.startsWith('B'))).toEqual(['B1', 'B2', 'B3']);
  expect(otherDoneWhileFailing).toBe(true);
});

test('head-of-line: a partition whose head keeps failing delays no other partition', async () => {
  const ns = testNamespace('hol');
  const q = queue(ns);
  const applied = new Map<string, number>();
  let attempts = 0;
  consumer(
    ns,
    async (b) => {
      if (b.partitionKey === 'poison') {
        attempts++;
        throw new Error('always fails');
      }
      applied.set(b.partitionKey, (applied.get(b.partitionKey) ?? 0) + b.items.length);
    },
    { concurrency: 2 },
  );
  const list: EnqueueItem[] = [item('poison', 'X1'), item('poison', 'X2')];
  for (let p = 0; p < 20; p++) for (let i = 0; i < 10; i++) list.push(item(`p${p}`, `p${p}-${i}`));
  const started = Date.now();
  await q.enqueue(list);
  await waitFor(
    'the healthy partitions to drain',
    async () => (await readSignals(redis, q.keys)).backlog === 2,
    10000,
  );
  const elapsed = Date.now() - started;
  expect([...applied.values()].reduce((a, b) => a + b, 0)).toBe(200);
  expect(attempts).toBeGreaterThanOrEqual(1);
  // 200 trades of healthy partitions with concurrency 2 are done long before the poison's backoff runs out.
  expect(elapsed).toBeLessThan(5000);
  expect((await readHead(redis, q.keys, 'poison')).map((i) => i.tradeId)).toEqual(['X1', 'X2']);
  expect((await readSignals(redis, q.keys)).pendingPartitions).toBe(1);
});

test('fencing: a batch whose lease was taken over is not acked, and the epoch moves on', async () => {
  const ns = testNamespace('fence');
  const q = queue(ns);
  const keys = new QueueKeys(ns);
  const events: ConsumerEvent[] = [];
  const epochs: number[] = [];
  let stole = false;
  consumer(
    ns,
    async (b) => {
      epochs.push(b.epoch);
      if (!stole) {
        stole = true;
        // Another lease is taken meanwhile (as after a stall): this holder is fenced.
        await redis.hincrby(keys.epochs, 'P', 1);
      }
    },
    { onEvent: (e) => events.push(e) },
  );
  await q.enqueue([item('P', 'T1'), item('P', 'T2')]);
  await waitFor('drain after the retry', async () => (await readSignals(redis, q.keys)).backlog === 0, 10000);
  expect(events.find((e) => e.type === 'lease-lost')).toMatchObject({ partitionKey: 'P', why: 'epoch' });
  const acks = events.filter((e) => e.type === 'acked');
  expect(acks).toHaveLength(1);
  expect(acks[0]).toMatchObject({ firstSeq: 1, lastSeq: 2 });
  expect(epochs[1]).toBeGreaterThan(epochs[0]! + 1);
});

test('reconciler: partitions with trades that are neither ready nor leased (ready set lost by hand) are drained after the reconciler runs', async () => {
  const ns = testNamespace('reconcile');
  const keys = new QueueKeys(ns);
  const scripted = withScripts(redis);
  const args: (string | number)[] = [
    keys.seqs,
    keys.backlog,
    keys.pending,
    keys.halted,
    keys.ready,
    keys.wake,
    keys.base + ':',
    0,
  ];
  for (let p = 0; p < 5; p++) for (let i = 0; i < 3; i++) args.push(`P${p}`, `T${p}-${i}`, 'h', '{}');
  await scripted.tfEnqueue(...args);
  // State changed from outside: the ready set is gone, the trades are not.
  await redis.del(keys.ready);
  const applied: string[] = [];
  consumer(ns, async (b) => void applied.push(...b.items.map((i) => i.tradeId)));
  await new Promise((r) => setTimeout(r, 300));
  expect(applied).toEqual([]);
  const reconciler = new Reconciler({ redis, namespace: ns, intervalMs: 1000, pageSize: 2 });
  open.push(reconciler);
  expect((await reconciler.runOnce()).sort()).toEqual(['P0', 'P1', 'P2', 'P3', 'P4']);
  await waitFor('drain', async () => (await readSignals(redis, keys)).backlog === 0, 10000);
  expect(applied).toHaveLength(15);
  // Nothing left to re-arm.
  await redis.del(keys.reconcilerLock);
  expect(await reconciler.runOnce()).toEqual([]);
});

test('halt policy and operator actions: a halted partition keeps its trades, asks for no worker, and resumes in order', async () => {
  const ns = testNamespace('halt');
  const q = queue(ns);
  const admin = new PartitionAdmin(redis, ns);
  const applied: string[] = [];
  let haltOnce = true;
  consumer(
    ns,
    async (b) => {
      const bad = b.items.find((i) => i.tradeId === 'H2');
      if (bad && haltOnce) {
        haltOnce = false;
        throw new HaltPartitionError({
          code: 'unknown_ref',
          message: 'AMEND of an unknown trade',
          tradeId: bad.tradeId,
          seq: bad.seq,
        });
      }
      applied.push(...b.items.map((i) => i.tradeId));
    },
    { batchSize: 1 },
  );
  await q.enqueue([item('H', 'H1'), item('H', 'H2'), item('H', 'H3'), item('OK', 'K1')]);
  await waitFor('the halt', async () => (await admin.listHalted()).length === 1, 10000);
  await waitFor('the healthy partition', () => applied.includes('K1'));
  const [halted] = await admin.listHalted();
  expect(halted).toMatchObject({ partitionKey: 'H', reason: { code: 'unknown_ref', tradeId: 'H2', seq: 2 } });
  let s = await readSignals(redis, q.keys);
  expect(s).toMatchObject({ pendingPartitions: 0, backlog: 2, haltedPartitions: 1 });
  // Trades enqueued to a halted partition wait behind the halt.
  await q.enqueue([item('H', 'H4')]);
  await new Promise((r) => setTimeout(r, 200));
  expect(applied).toEqual(['H1', 'K1']);

  // Operator: skip refuses a stale seq, resume drains the rest in order.
  await expect(admin.skipHead('H', 3)).rejects.toThrow(/not seq 3/);
  expect(await admin.resume('H')).toBe(true);
  await waitFor('drain', async () => (await readSignals(redis, q.keys)).backlog === 0, 10000);
  expect(applied).toEqual(['H1', 'K1', 'H2', 'H3', 'H4']);
  s = await readSignals(redis, q.keys);
  expect(s).toMatchObject({ pendingPartitions: 0, backlog: 0, haltedPartitions: 0 });

  // An operator halt and a skip of the head.
  await q.enqueue([item('H', 'H5'), item('H', 'H6')]);
  await waitFor('drain', async () => (await readSignals(redis, q.keys)).backlog === 0, 10000);
  await admin.halt('H', { code: 'operator', message: 'investigating' });
  await q.enqueue([item('H', 'H7'), item('H', 'H8')]);
  const skipped = await admin.skipHead('H', 7);
  expect(skipped.tradeId).toBe('H7');
  await admin.resume('H');
  await waitFor('drain', async () => (await readSignals(redis, q.keys)).backlog === 0, 10000);
  expect(applied.slice(-3)).toEqual(['H5', 'H6', 'H8']);
});

test('scripts survive SCRIPT FLUSH (as after a Redis restart)', async () => {
  const ns = testNamespace('noscript');
  const q = queue(ns);
  await q.enqueue([item('P', 'A')]);
  await redis.script('FLUSH');
  expect(await q.enqueue([item('P', 'B')])).toEqual([{ status: 'queued', seq: 2 }]);
  const p = redis.pipeline();
  await redis.script('FLUSH');
  (p as unknown as ReturnType<typeof withScripts>).tfResume(
    q.keys.halted,
    q.keys.pending,
    q.keys.list('P'),
    q.keys.ready,
    q.keys.leases,
    q.keys.wake,
    'P',
  );
  const res = await p.exec();
  expect(res![0]![0]).toBeNull();
});

test('signals: pending partitions, backlog and oldest age equal the truth after every step of a random run of enqueues, drains, crashes and halts', async () => {
  const ns = testNamespace('signals');
  const q = queue(ns);
  const keys = q.keys;
  const admin = new PartitionAdmin(redis, ns);
  let seed = 42;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const queued = new Map<string, number>(); // pk -> unapplied count (truth)
  const halted = new Set<string>();
  let nextId = 0;
  let c: PartitionConsumer | undefined;
  const start = () => {
    c = new PartitionConsumer({
      redis,
      namespace: ns,
      concurrency: 3,
      batchSize: 3,
      budget: 6,
      lockDurationMs: 1000,
      stalledIntervalMs: 500,
      retry: { baseMs: 20, maxMs: 100 },
      handler: async () => {
        if (rand(10) === 0) throw new Error('random failure');
        await new Promise((r) => setTimeout(r, rand(5)));
      },
      onEvent: (e) => {
        if (e.type === 'acked') queued.set(e.partitionKey, queued.get(e.partitionKey)! - e.count);
      },
    });
  };
  const check = async (step: string) => {
    const s = await readSignals(redis, keys);
    const live = [...queued].filter(([, n]) => n > 0);
    const pendingTruth = live.filter(([pk]) => !halted.has(pk));
    const heads = await Promise.all(pendingTruth.map(([pk]) => readHead(redis, keys, pk, 1)));
    const oldest = heads.length ? Math.min(...heads.map((h) => h[0]!.enqueuedAt)) : null;
    expect({
      step,
      backlog: s.backlog,
      pending: s.pendingPartitions,
      halted: s.haltedPartitions,
      oldest: s.oldestEnqueuedAt,
    }).toEqual({
      step,
      backlog: live.reduce((a, [, n]) => a + n, 0),
      pending: pendingTruth.length,
      halted: halted.size,
      oldest,
    });
  };
  start();
  for (let step = 0; step < 40; step++) {
    const action = rand(10);
    if (action < 4) {
      const batch: EnqueueItem[] = [];
      for (let i = rand(30) + 1; i > 0; i--) {
        const pk = `P${rand(12)}`;
        batch.push(item(pk, `T${nextId++}`));
      }
      if (rand(4) === 0) batch.push({ ...batch[0]! }); // a duplicate
      const res = await q.enqueue(batch);
      res.forEach((r, i) => {
        if (r.status === 'queued')
          queued.set(batch[i]!.partitionKey, (queued.get(batch[i]!.partitionKey) ?? 0) + 1);
      });
    } else if (action < 7) {
      await c!.resume();
      await new Promise((r) => setTimeout(r, rand(60)));
    } else if (action < 8) {
      await c!.close(true); // a crash: batches in hand stay un-acked until their lock expires
      // The force-closed worker's handlers still finish in this process (a real
      // crash would cut them); let them settle so the truth is not mid-update.
      await new Promise((r) => setTimeout(r, 100));
      start();
    } else {
      const pk = `P${rand(12)}`;
      if (halted.has(pk)) {
        await admin.resume(pk);
        halted.delete(pk);
      } else {
        await admin.halt(pk, { code: 'test', message: 'random halt' });
        halted.add(pk);
      }
    }
    await c!.pause(true); // wait for the batches in hand, so the truth is settled
    await check(`step ${step} (action ${action})`);
  }
  for (const pk of halted) await admin.resume(pk);
  halted.clear();
  c!.resume();
  await waitFor('drain', async () => (await readSignals(redis, keys)).backlog === 0, 20000);
  await c!.pause(true);
  await check('final');
  expect([...queued.values()].every((n) => n === 0)).toBe(true);
  await c!.close();
}, 60000);

test('redis-restart: queued trades survive a Redis restart (AOF), scripts are reloaded, and the drain resumes', async () => {
  const server = await startRedis({ appendonly: true, appendfsync: 'always' });
  const own = new IORedis(server.url, { maxRetriesPerRequest: null });
  try {
    const ns = testNamespace('restart');
    const q = new PartitionQueue({ redis: own, namespace: ns });
    const applied: string[] = [];
    const c = new PartitionConsumer({
      redis: own,
      namespace: ns,
      handler: async (b) => void applied.push(...b.items.map((i) => i.tradeId)),
      batchSize: 2,
      lockDurationMs: 1000,
      stalledIntervalMs: 500,
      autorun: false,
    });
    await q.enqueue(['A1', 'A2', 'A3'].map((t) => item('A', t)));
    await server.restart();
    // The same connections reconnect; EVALSHA meets NOSCRIPT and falls back to EVAL.
    expect(await q.enqueue([item('A', 'A4')])).toEqual([{ status: 'queued', seq: 4 }]);
    void c.run();
    await waitFor(
      'drain after the restart',
      async () => (await readSignals(own, q.keys)).backlog === 0,
      15000,
    );
    expect(applied).toEqual(['A1', 'A2', 'A3', 'A4']);
    await c.close();
  } finally {
    own.disconnect();
    await server.stop();
  }
});

test('halt with a committed prefix: the trades before the halting one are acked, the halting one is the head', async () => {
  const ns = testNamespace('halt-prefix');
  const q = queue(ns);
  const admin = new PartitionAdmin(redis, ns);
  consumer(
    ns,
    async (b) => {
      const bad = b.items.find((i) => i.tradeId === 'P3');
      if (bad)
        throw new HaltPartitionError({
          code: 'unknown_ref',
          message: 'bad ref',
          tradeId: bad.tradeId,
          seq: bad.seq,
        });
    },
    { batchSize: 4 },
  );
  await q.enqueue(['P1', 'P2', 'P3', 'P4'].map((t) => item('P', t)));
  await waitFor('the halt', async () => (await admin.listHalted()).length === 1, 10000);
  expect((await readHead(redis, q.keys, 'P')).map((i) => [i.seq, i.tradeId])).toEqual([
    [3, 'P3'],
    [4, 'P4'],
  ]);
  expect(await readSignals(redis, q.keys)).toMatchObject({
    backlog: 2,
    pendingPartitions: 0,
    haltedPartitions: 1,
  });
});
