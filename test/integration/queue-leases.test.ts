/**
 * The leases of the partitioned queue against a real Redis, consumer by
 * consumer (each with its own connection, as separate workers would have):
 * takeover of an expired lease, the heartbeat, retries with backoff,
 * wake-ups of idle consumers, round-robin fairness, graceful close, an
 * operator halt and resume under a lease, and pause.
 */
import IORedis from 'ioredis';
import {
  PartitionAdmin,
  PartitionConsumer,
  PartitionQueue,
  QueueKeys,
  readSignals,
  type Batch,
  type ConsumerEvent,
  type EnqueueItem,
} from '../../src/queue';
import { redisUrl, testNamespace } from '../helpers/isolation';
import { waitFor } from '../helpers/processes';
import { startRedis } from '../helpers/servers';

type ConsumerOptions = ConstructorParameters<typeof PartitionConsumer>[0];

/** One handler call, as the worker that made it saw it. */
interface Call {
  worker: string;
  pk: string;
  seqs: number[];
  epoch: number;
  attempt: number;
  start: number;
  end?: number;
  ok?: boolean;
}

interface Seen {
  worker: string;
  at: number;
  event: ConsumerEvent;
}

/** What every consumer of one test did: handler calls, events, errors, partitions in hand at once. */
class Log {
  readonly calls: Call[] = [];
  readonly events: Seen[] = [];
  readonly errors: unknown[] = [];
  private readonly inFlight = new Map<string, number>();
  /** Most handler calls on one partition at the same time, over all consumers. */
  readonly maxInFlight = new Map<string, number>();

  enter(pk: string): void {
    const n = (this.inFlight.get(pk) ?? 0) + 1;
    this.inFlight.set(pk, n);
    this.maxInFlight.set(pk, Math.max(n, this.maxInFlight.get(pk) ?? 0));
  }

  leave(pk: string): void {
    this.inFlight.set(pk, this.inFlight.get(pk)! - 1);
  }

  busy(): number {
    return [...this.inFlight.values()].reduce((a, b) => a + b, 0);
  }

  of(pk: string, worker?: string): Call[] {
    return this.calls.filter((c) => c.pk === pk && (worker === undefined || c.worker === worker));
  }

  /** The seqs of the calls that succeeded, in call order. */
  applied(pk: string): number[] {
    return this.of(pk)
      .filter((c) => c.ok)
      .flatMap((c) => c.seqs);
  }

  eventsOf<T extends ConsumerEvent['type']>(type: T, worker?: string): Extract<ConsumerEvent, { type: T }>[] {
    return this.events
      .filter((s) => s.event.type === type && (worker === undefined || s.worker === worker))
      .map((s) => s.event as Extract<ConsumerEvent, { type: T }>);
  }
}

/** A promise the test opens by hand: a handler that hangs until the test lets it go. */
class Gate {
  open!: () => void;
  readonly opened = new Promise<void>((resolve) => (this.open = resolve));
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

let redis: IORedis;
const consumers: PartitionConsumer[] = [];
const connections: IORedis[] = [];
const gates: Gate[] = [];
const cleanups: (() => Promise<void>)[] = [];

beforeAll(() => {
  redis = new IORedis(redisUrl(), { maxRetriesPerRequest: null });
});

afterEach(async () => {
  // A hung handler would keep a graceful close waiting forever.
  for (const g of gates.splice(0)) g.open();
  const closing = Promise.all(consumers.splice(0).map((c) => c.close()));
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('a consumer was still running 8 s after close()')), 8000);
  });
  try {
    await Promise.race([closing, late]);
  } finally {
    clearTimeout(timer);
    for (const c of connections.splice(0)) c.disconnect();
    for (const f of cleanups.splice(0).reverse()) await f();
  }
});

afterAll(() => redis.quit());

/** A test's namespace, its keys, a producer-side queue and an empty log. */
function scenario(name: string): { ns: string; keys: QueueKeys; q: PartitionQueue; log: Log } {
  const ns = testNamespace(name);
  return { ns, keys: new QueueKeys(ns), q: new PartitionQueue({ redis, namespace: ns }), log: new Log() };
}

function gate(): Gate {
  const g = new Gate();
  gates.push(g);
  return g;
}

function trades(pk: string, count: number, from = 1): EnqueueItem[] {
  return range(from, from + count - 1).map((i) => ({
    partitionKey: pk,
    tradeId: `${pk}-${i}`,
    payloadHash: 'h',
    body: JSON.stringify({ tradeId: `${pk}-${i}` }),
  }));
}

/**
 * A consumer on its own connection, recording into `log`. `work` is the
 * handler's own behaviour (sleep, hang, fail).
 */
function worker(
  name: string,
  namespace: string,
  log: Log,
  work: (b: Batch) => Promise<void> = async () => undefined,
  extra: Partial<ConsumerOptions> & { url?: string } = {},
): PartitionConsumer {
  const { url, ...options } = extra;
  const conn = new IORedis(url ?? redisUrl(), {
    maxRetriesPerRequest: null,
    // duplicate() keeps it: the blocking wait shows up in CLIENT LIST under this name.
    connectionName: `${namespace}-${name}`,
  });
  conn.on('error', () => undefined);
  connections.push(conn);
  const c = new PartitionConsumer({
    redis: conn,
    namespace,
    concurrency: 2,
    batchSize: 2,
    budget: 64,
    lockDurationMs: 1000,
    stalledIntervalMs: 500,
    retry: { baseMs: 50, maxMs: 400 },
    handler: async (b) => {
      const call: Call = {
        worker: name,
        pk: b.partitionKey,
        seqs: b.items.map((i) => i.seq),
        epoch: b.epoch,
        attempt: b.attempt,
        start: Date.now(),
      };
      log.calls.push(call);
      log.enter(b.partitionKey);
      try {
        await work(b);
        call.ok = true;
      } finally {
        call.end = Date.now();
        log.leave(b.partitionKey);
      }
    },
    onEvent: (event) => log.events.push({ worker: name, at: Date.now(), event }),
    onError: (err) => log.errors.push(err),
    ...options,
  });
  consumers.push(c);
  return c;
}

async function drained(keys: QueueKeys, conn: IORedis = redis, timeoutMs = 8000): Promise<void> {
  await waitFor('the backlog to drain', async () => (await readSignals(conn, keys)).backlog === 0, timeoutMs);
}

/** Nothing is left in flight or waiting: no lease, nothing ready, no retry count. */
async function expectQuiet(keys: QueueKeys, conn: IORedis = redis): Promise<void> {
  expect({
    leases: await conn.zcard(keys.leases),
    ready: await conn.zcard(keys.ready),
    attempts: await conn.hlen(keys.attempts),
    signals: await readSignals(conn, keys),
  }).toMatchObject({
    leases: 0,
    ready: 0,
    attempts: 0,
    signals: { backlog: 0, pendingPartitions: 0 },
  });
}

/** True while the named consumer's blocking connection is parked in BLPOP (an idle claim loop). */
async function blockedInBlpop(namespace: string, name: string): Promise<boolean> {
  const list = (await redis.client('LIST')) as string;
  return list
    .split('\n')
    .some((line) => line.includes(` name=${namespace}-${name} `) && line.includes(' cmd=blpop '));
}

test('takeover: a dead worker’s lease expires; another takes the partition with a higher epoch and a stall, drains it in order, and the late ack is refused', async () => {
  const { ns, keys, q, log } = scenario('takeover');
  const LOCK = 400;
  const hang = gate();
  const opts = { lockDurationMs: LOCK, stalledIntervalMs: 200 };
  const a = worker('A', ns, log, (b) => (b.items[0]!.seq === 1 ? hang.opened : Promise.resolve()), opts);
  await a.waitUntilReady();
  await q.enqueue(trades('P', 6));
  const first = await waitFor('A to start P', () => log.of('P', 'A')[0]);
  expect(first.seqs).toEqual([1, 2]);

  const b = worker('B', ns, log, async () => undefined, opts);
  await b.waitUntilReady();
  // A's handler hangs but A is alive: its heartbeat keeps the lease, B waits.
  await sleep(3 * LOCK);
  expect(log.of('P', 'B')).toEqual([]);
  expect(await redis.zscore(keys.leases, 'P')).not.toBeNull();

  // A dies (its heartbeat stops, its handler is cut off from the world).
  await a.close(true);
  await drained(keys);
  const taken = log.of('P', 'B');
  expect(taken.flatMap((c) => c.seqs)).toEqual(range(1, 6));
  for (const c of taken) expect(c.epoch).toBeGreaterThan(first.epoch);
  expect(log.eventsOf('stalled', 'B')).toEqual([{ type: 'stalled', partitionKey: 'P' }]);
  expect(log.eventsOf('stalled', 'A')).toEqual([]);
  expect(await redis.hgetall(keys.stalls)).toEqual({ P: '1' });

  // The zombie's handler returns: its ack is fenced by the epoch, nothing is popped or re-applied.
  hang.open();
  const lost = await waitFor('A’s late ack to be refused', () => log.eventsOf('lease-lost', 'A')[0], 5000);
  expect(lost).toEqual({ type: 'lease-lost', partitionKey: 'P', why: 'epoch' });
  expect(log.eventsOf('acked', 'A')).toEqual([]);
  expect(log.eventsOf('acked', 'B').map((e) => [e.firstSeq, e.lastSeq])).toEqual([
    [1, 2],
    [3, 4],
    [5, 6],
  ]);
  await sleep(LOCK);
  expect(log.of('P', 'B').flatMap((c) => c.seqs)).toEqual(range(1, 6));
  expect(await redis.hget(keys.epochs, 'P')).toBe(String(taken[0]!.epoch));
  expect(await redis.hgetall(keys.stalls)).toEqual({ P: '1' });
  await expectQuiet(keys);
  expect(log.errors).toEqual([]);
});

test('heartbeat: a handler slower than 3 x lockDuration keeps its lease; a second consumer drains other partitions meanwhile and never gets it', async () => {
  const { ns, keys, q, log } = scenario('heartbeat');
  const LOCK = 300;
  const WORK = 1200;
  const opts = { lockDurationMs: LOCK, stalledIntervalMs: 200 };
  const slow = async (b: Batch) => {
    if (b.partitionKey === 'P') await sleep(WORK);
  };
  const a = worker('A', ns, log, slow, { ...opts, concurrency: 1 });
  await a.waitUntilReady();
  await q.enqueue(trades('P', 4));
  await waitFor('A to start P', () => log.of('P', 'A')[0]);
  const b = worker('B', ns, log, slow, opts);
  await b.waitUntilReady();
  // B is alive and claiming while A holds P (A has no free slot, so B gets Q).
  await q.enqueue(trades('Q', 3));
  await waitFor('B to drain Q', () => log.applied('Q').length === 3, 3000);
  expect(log.of('P', 'A')).toHaveLength(1);
  expect(log.of('P', 'A')[0]!.end).toBeUndefined();

  await drained(keys);
  const calls = log.of('P');
  expect(calls.map((c) => [c.worker, c.seqs, c.ok])).toEqual([
    ['A', [1, 2], true],
    ['A', [3, 4], true],
  ]);
  // One lease for the whole drain: the same epoch, extended by the heartbeat and by the ack.
  expect(new Set(calls.map((c) => c.epoch)).size).toBe(1);
  for (const c of calls) expect(c.end! - c.start).toBeGreaterThanOrEqual(WORK - 5);
  expect(log.of('Q').every((c) => c.worker === 'B')).toBe(true);
  expect(log.eventsOf('stalled')).toEqual([]);
  expect(log.eventsOf('lease-lost')).toEqual([]);
  expect(log.maxInFlight.get('P')).toBe(1);
  expect(await redis.hlen(keys.stalls)).toBe(0);
  await expectQuiet(keys);
  expect(log.errors).toEqual([]);
});

test('retry: a batch that fails twice then succeeds is retried at the head with attempt 0, 1, 2; another partition is applied during the backoff', async () => {
  const { ns, keys, q, log } = scenario('retry');
  let failures = 0;
  const flaky = async (b: Batch) => {
    if (b.partitionKey === 'A' && b.items[0]!.seq === 1 && failures < 2) {
      failures++;
      throw new Error(`transient ${failures}`);
    }
  };
  // One slot: B can only be applied if A's backoff hands the slot over.
  worker('W', ns, log, flaky, { concurrency: 1, retry: { baseMs: 300, maxMs: 300 } });
  // One call: both are ready from the same ms, and A (first by name) is claimed first.
  await q.enqueue([...trades('A', 3), ...trades('B', 3)]);

  await waitFor('the first failure', () => log.eventsOf('failed')[0]);
  // Counted in Redis, so that any worker retrying it sees the attempt.
  expect(await redis.hget(keys.attempts, 'A')).toBe('1');
  await drained(keys);

  expect(log.of('A').map((c) => [c.seqs, c.attempt, c.ok ?? false])).toEqual([
    [[1, 2], 0, false],
    [[1, 2], 1, false],
    [[1, 2], 2, true],
    [[3], 0, true],
  ]);
  expect(log.eventsOf('failed').map((e) => [e.partitionKey, e.attempt, e.error.message])).toEqual([
    ['A', 1, 'transient 1'],
    ['A', 2, 'transient 2'],
  ]);
  expect(log.applied('A')).toEqual([1, 2, 3]);
  expect(log.applied('B')).toEqual([1, 2, 3]);
  // B was not held up by A: it was applied after A's first failure, before A's retry succeeded.
  const [failed1, , success] = log.of('A');
  for (const c of log.of('B')) {
    expect(c.start).toBeGreaterThanOrEqual(failed1!.end!);
    expect(c.end!).toBeLessThanOrEqual(success!.start);
  }
  expect(await redis.hexists(keys.attempts, 'A')).toBe(0);
  await expectQuiet(keys);
});

test('wake-up: an idle consumer with stalledIntervalMs 10 s applies a new trade at once', async () => {
  const { ns, keys, q, log } = scenario('wake');
  worker('W', ns, log, async () => undefined, { stalledIntervalMs: 10000 });
  await q.enqueue(trades('P', 2));
  await drained(keys);
  await sleep(500);
  await waitFor('the consumer to block idle', () => blockedInBlpop(ns, 'W'), 2000);

  const t0 = Date.now();
  await q.enqueue(trades('P', 1, 3));
  await waitFor('the new trade', () => log.applied('P').includes(3), 3000, 10);
  expect(Date.now() - t0).toBeLessThan(3000);
  // A partition that never had trades wakes it too.
  const t1 = Date.now();
  await q.enqueue(trades('R', 1));
  await waitFor('the new partition', () => log.applied('R').length === 1, 3000, 10);
  expect(Date.now() - t1).toBeLessThan(3000);
  expect(log.applied('P')).toEqual([1, 2, 3]);
});

test('fairness: a partition goes to the back after `budget` trades, so a small partition is applied before a big one finishes', async () => {
  const { ns, keys, q, log } = scenario('fair');
  const BUDGET = 4;
  worker('W', ns, log, async () => undefined, { concurrency: 1, batchSize: 2, budget: BUDGET });
  // Same call, same ms: "big" is claimed first.
  await q.enqueue([...trades('big', 40), ...trades('small', 4)]);
  await drained(keys);

  expect(log.applied('big')).toEqual(range(1, 40));
  expect(log.applied('small')).toEqual(range(1, 4));
  const order = log.calls.filter((c) => c.ok).flatMap((c) => c.seqs.map((s) => `${c.pk}${s}`));
  // big spends its budget, yields, and small (waiting since before) goes next.
  expect(order.slice(0, 8)).toEqual(['big1', 'big2', 'big3', 'big4', 'small1', 'small2', 'small3', 'small4']);
  expect(log.eventsOf('yielded')[0]).toEqual({ type: 'yielded', partitionKey: 'big', remaining: 36 });
  // Every lease of big ended after at most `budget` trades.
  const leases = new Map<number, number>();
  for (const c of log.of('big')) leases.set(c.epoch, (leases.get(c.epoch) ?? 0) + c.seqs.length);
  expect([...leases.values()].every((n) => n <= BUDGET)).toBe(true);
  expect(log.eventsOf('yielded')).toHaveLength(9);
  await expectQuiet(keys);
});

test('graceful-shutdown: close() finishes the batches in hand and hands the partitions back; a new consumer finishes them in order, nothing twice', async () => {
  const { ns, keys, q, log } = scenario('close');
  const pks = ['P0', 'P1', 'P2', 'P3'];
  const a = worker('A', ns, log, () => sleep(150), { concurrency: 4, claimSize: 4, lockDurationMs: 2000 });
  await q.enqueue(pks.flatMap((pk) => trades(pk, 10)));
  await waitFor(
    'A to hold every partition and ack a batch',
    () => a.activeDrains === 4 && log.eventsOf('acked').length > 0,
  );
  await a.close();

  expect(log.busy()).toBe(0);
  expect(await redis.zcard(keys.leases)).toBe(0);
  // Handed back, not left to expire: every partition with trades left is claimable now.
  const ready = await redis.zrange(keys.ready, 0, -1);
  const left = pks.filter((pk) => log.applied(pk).length < 10);
  expect(ready.sort()).toEqual(left);
  expect(left.length).toBeGreaterThan(0);
  expect(await redis.hlen(keys.attempts)).toBe(0);
  const byA = new Map(pks.map((pk) => [pk, log.applied(pk)]));
  // Every batch A started was finished and acked.
  expect(log.calls.every((c) => c.worker === 'A' && c.ok)).toBe(true);
  expect(log.eventsOf('acked', 'A').reduce((n, e) => n + e.count, 0)).toBe(
    [...byA.values()].reduce((n, s) => n + s.length, 0),
  );

  worker('B', ns, log, async () => undefined, { concurrency: 4 });
  await drained(keys);
  for (const pk of pks) {
    expect(log.applied(pk)).toEqual(range(1, 10));
    const fromB = log.of(pk, 'B').flatMap((c) => c.seqs);
    expect(fromB).toEqual(range(byA.get(pk)!.length + 1, 10));
  }
  expect(log.eventsOf('stalled')).toEqual([]);
  expect(log.eventsOf('lease-lost')).toEqual([]);
  await expectQuiet(keys);
});

test('graceful-shutdown keeps renewing the leases in hand: a batch longer than lockDuration, finished during close(), is acked, not taken over', async () => {
  // Regression: close() once cleared the heartbeat before awaiting the
  // batches in hand, so a live worker finishing its batch let its lease
  // lapse; another worker took the partition over (a 'stalled' event,
  // stalls + 1, the batch run again) and the closing worker's ack was
  // refused (B took P 268 ms after close() and ran [1,2] again).
  const { ns, keys, q, log } = scenario('close-heartbeat');
  const LOCK = 300;
  const opts = { lockDurationMs: LOCK, stalledIntervalMs: 200 };
  const a = worker('A', ns, log, () => sleep(4 * LOCK), opts);
  await a.waitUntilReady();
  await q.enqueue(trades('P', 4));
  await waitFor('A to start P', () => log.of('P', 'A')[0]);
  const b = worker('B', ns, log, async () => undefined, opts);
  await b.waitUntilReady();
  // SIGTERM during a batch that takes 4 x lockDuration.
  await a.close();
  await drained(keys);
  expect(log.eventsOf('stalled')).toEqual([]);
  expect(log.eventsOf('lease-lost')).toEqual([]);
  expect(log.of('P').flatMap((c) => c.seqs)).toEqual([1, 2, 3, 4]);
});

test('operator halt while leased, then resume while the lease is still held: no second lease, the holder goes on', async () => {
  const { ns, keys, q, log } = scenario('halt-resume');
  const admin = new PartitionAdmin(redis, ns);
  const hold = gate();
  const opts = { lockDurationMs: 500, stalledIntervalMs: 200 };
  const work = async (b: Batch) => {
    if (b.items[0]!.seq === 1) await hold.opened;
    else await sleep(20);
  };
  const a = worker('A', ns, log, work, opts);
  await a.waitUntilReady();
  await q.enqueue(trades('P', 8));
  const first = await waitFor('A to start P', () => log.of('P', 'A')[0]);
  // Another consumer is idle and ready to claim anything that becomes claimable.
  const b = worker('B', ns, log, work, opts);
  await b.waitUntilReady();

  expect(await admin.halt('P', { code: 'operator', message: 'look at it' })).toBe(true);
  expect(await redis.zscore(keys.ready, 'P')).toBeNull();
  expect(await admin.resume('P')).toBe(true);
  // Still leased by A: not made claimable (a second lease would fence A for nothing).
  expect(await redis.zscore(keys.ready, 'P')).toBeNull();
  expect(await redis.zscore(keys.leases, 'P')).not.toBeNull();
  await sleep(600); // more than a lease: B must still not get it (A's heartbeat holds it)
  expect(log.of('P', 'B')).toEqual([]);
  hold.open();
  await drained(keys);

  const calls = log.of('P');
  const seqs = calls.flatMap((c) => c.seqs);
  expect(seqs).toEqual(range(1, 8));
  expect(calls.every((c) => c.worker === 'A' && c.epoch === first.epoch && c.ok)).toBe(true);
  expect(log.maxInFlight.get('P')).toBe(1);
  expect(log.eventsOf('lease-lost')).toEqual([]);
  expect(log.eventsOf('stalled')).toEqual([]);
  expect(log.eventsOf('halted')).toEqual([]);
  expect(await admin.listHalted()).toEqual([]);
  await expectQuiet(keys);
});

test('operator halt while leased: the holder stops at its next batch boundary; resume after that is one new lease, in order, nothing fenced', async () => {
  const { ns, keys, q, log } = scenario('halt-stop');
  const admin = new PartitionAdmin(redis, ns);
  const hold = gate();
  const opts = { lockDurationMs: 500, stalledIntervalMs: 200 };
  const work = async (b: Batch) => {
    if (b.items[0]!.seq === 1) await hold.opened;
  };
  const a = worker('A', ns, log, work, opts);
  await a.waitUntilReady();
  await q.enqueue(trades('P', 8));
  const first = await waitFor('A to start P', () => log.of('P', 'A')[0]);
  const b = worker('B', ns, log, work, opts);
  await b.waitUntilReady();

  await admin.halt('P', { code: 'operator', message: 'look at it' });
  hold.open();
  // The batch in hand is acked; the lease is released and the partition left alone.
  await waitFor(
    'A to release the halted partition',
    async () => (await redis.zcard(keys.leases)) === 0,
    3000,
  );
  await sleep(300);
  expect(log.of('P')).toHaveLength(1);
  expect(log.eventsOf('acked').map((e) => [e.firstSeq, e.lastSeq])).toEqual([[1, 2]]);
  expect(await redis.zscore(keys.ready, 'P')).toBeNull();

  await admin.resume('P');
  await drained(keys);
  const calls = log.of('P');
  expect(calls.flatMap((c) => c.seqs)).toEqual(range(1, 8));
  const later = calls.slice(1);
  expect(new Set(later.map((c) => c.epoch)).size).toBe(1);
  expect(later[0]!.epoch).toBe(first.epoch + 1);
  expect(log.maxInFlight.get('P')).toBe(1);
  expect(log.eventsOf('lease-lost')).toEqual([]);
  expect(log.eventsOf('stalled')).toEqual([]);
  await expectQuiet(keys);
});

test('pause(true) resolves once no partition is in hand; nothing is claimed while paused; resume() goes on', async () => {
  const { ns, keys, q, log } = scenario('pause');
  const pks = ['P0', 'P1', 'P2', 'P3'];
  const c = worker('W', ns, log, () => sleep(100), { concurrency: 2, budget: 4, stalledIntervalMs: 200 });
  await q.enqueue(pks.flatMap((pk) => trades(pk, 8)));
  await waitFor('two partitions in hand', () => c.activeDrains === 2 && log.busy() > 0);

  await c.pause(true);
  expect(c.isPaused).toBe(true);
  expect(c.activeDrains).toBe(0);
  expect(log.busy()).toBe(0);
  expect(await redis.zcard(keys.leases)).toBe(0);
  const calls = log.calls.length;
  const epochs = await redis.hgetall(keys.epochs);
  // New trades (and their wake-ups) and several stalled intervals: no claim (a claim moves an epoch).
  await q.enqueue([...trades('P4', 2), ...trades('P0', 1, 9)]);
  await sleep(800);
  expect(log.calls.length).toBe(calls);
  expect(await redis.hgetall(keys.epochs)).toEqual(epochs);
  expect(await redis.zcard(keys.leases)).toBe(0);
  expect((await readSignals(redis, keys)).backlog).toBeGreaterThan(0);

  c.resume();
  expect(c.isPaused).toBe(false);
  await drained(keys);
  for (const pk of pks.slice(1)) expect(log.applied(pk)).toEqual(range(1, 8));
  expect(log.applied('P0')).toEqual(range(1, 9));
  expect(log.applied('P4')).toEqual([1, 2]);
  expect(log.maxInFlight.get('P0')).toBe(1);
  expect(log.eventsOf('lease-lost')).toEqual([]);
  await expectQuiet(keys);
});

test('pause(true) also waits for a claim already on its way to Redis: no partition is taken after it resolved', async () => {
  // Regression: pause(settle) once waited only for the drains it saw; a
  // claim already sent came back after it resolved, and the handler ran
  // with isPaused true ([1,2] started 557 ms after pause(true) resolved).
  // A circuit breaker that paused because PostgreSQL is down then burnt a
  // retry on it. Now the claim is awaited and what it took handed back.
  // Its own Redis: CLIENT PAUSE holds every client of the server.
  const server = await startRedis();
  const own = new IORedis(server.url, { maxRetriesPerRequest: null });
  cleanups.push(async () => {
    own.disconnect();
    await server.stop();
  });
  const ns = testNamespace('pause-claim');
  const keys = new QueueKeys(ns);
  const q = new PartitionQueue({ redis: own, namespace: ns });
  const log = new Log();
  const c = worker('W', ns, log, async () => undefined, { url: server.url, autorun: false });
  await c.waitUntilReady();
  await q.enqueue(trades('P', 2));
  // Hold every write (and script) for 600 ms: the first claim is in flight meanwhile.
  await own.call('CLIENT', 'PAUSE', '600', 'WRITE');
  void c.run();
  await sleep(100);
  await c.pause(true);
  const settled = Date.now();
  expect(c.activeDrains).toBe(0);
  await sleep(1200);
  // Draining the claimed partition before pause() resolves would be fine; starting it after is not.
  expect({
    startedAfterPause: log.calls.filter((call) => call.start >= settled).map((call) => call.seqs),
    leases: await own.zcard(keys.leases),
    held: c.activeDrains,
  }).toEqual({ startedAfterPause: [], leases: 0, held: 0 });
});

test('wake-up: a paused consumer does not swallow the wake-up an idle one needs', async () => {
  // Regression: pause() once left the claim loop parked in BLPOP on the
  // shared wake list; the paused consumer, blocked longest, was served the
  // wake-up and dropped it, and the idle one slept until stalledIntervalMs
  // (Y applied the trade after 10,023 ms). Now pause() leaves the shared
  // wait and a wake-up taken while paused is passed on.
  const ns = testNamespace('wake-paused');
  const q = new PartitionQueue({ redis, namespace: ns });
  const log = new Log();
  const x = worker('X', ns, log, async () => undefined, { stalledIntervalMs: 10000 });
  await waitFor('X to block idle', () => blockedInBlpop(ns, 'X'), 3000);
  worker('Y', ns, log, async () => undefined, { stalledIntervalMs: 10000 });
  await waitFor('Y to block idle', () => blockedInBlpop(ns, 'Y'), 3000);
  await x.pause();
  await q.enqueue(trades('P', 1));
  await waitFor('the idle consumer to apply the trade', () => log.applied('P').length === 1, 3000, 10);
  expect(log.of('P')[0]!.worker).toBe('Y');
});

test('acks claim for the slots they free: many one-trade partitions are drained without ever holding more than `concurrency` leases', async () => {
  const { ns, keys, q, log } = scenario('ack-claims');
  const C = 4;
  const c = worker('A', ns, log, () => sleep(Math.random() * 4), { concurrency: C, claimSize: 2 });
  await c.waitUntilReady();
  const pks = range(1, 60).map((i) => `P${i}`);
  await q.enqueue(pks.flatMap((pk) => trades(pk, 1)));
  let maxLeases = 0;
  let maxBusy = 0;
  const own = new IORedis(redisUrl(), { maxRetriesPerRequest: null });
  connections.push(own);
  const sampler = setInterval(() => {
    maxBusy = Math.max(maxBusy, log.busy());
    void own.zcard(keys.leases).then((n) => (maxLeases = Math.max(maxLeases, n)));
  }, 2);
  try {
    await drained(keys);
  } finally {
    clearInterval(sampler);
  }
  for (const pk of pks) expect(log.applied(pk)).toEqual([1]);
  expect(log.calls).toHaveLength(pks.length);
  expect(maxBusy).toBeLessThanOrEqual(C);
  expect(maxLeases).toBeLessThanOrEqual(C);
  // More than one partition at a time: the acks refilled the slots.
  expect(maxBusy).toBeGreaterThan(1);
  await waitFor('the last leases to go', async () => (await redis.zcard(keys.leases)) === 0, 3000);
  await expectQuiet(keys);
});
