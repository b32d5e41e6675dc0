/**
 * The circuit breaker's state machine, driven by a fake clock and a scripted
 * probe (no server involved: this file could live in test/unit, and sits here
 * only because the worker's tests are kept under test/integration/worker*).
 */
import { CircuitBreaker, type BreakerClock, type BreakerState } from '../../src/worker/circuit-breaker';

class FakeClock implements BreakerClock {
  now = 0;
  private seq = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.now + ms, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Delays of the pending timers, from now. */
  pending(): number[] {
    return [...this.timers.values()].map((t) => t.at - this.now).sort((a, b) => a - b);
  }

  /** Moves time forward, firing due timers in order and letting their promises settle. */
  async advance(ms: number): Promise<void> {
    const until = this.now + ms;
    for (;;) {
      const next = [...this.timers.entries()]
        .filter(([, t]) => t.at <= until)
        .sort((a, b) => a[1].at - b[1].at)[0];
      if (!next) break;
      this.timers.delete(next[0]);
      this.now = next[1].at;
      next[1].fn();
      await flush();
    }
    this.now = until;
    await flush();
  }
}

const flush = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
const constraint = Object.assign(new Error('duplicate key value violates unique constraint'), {
  code: '23505',
});

function setup(probeResults: boolean[], opts: { threshold?: number } = {}) {
  const clock = new FakeClock();
  const transitions: string[] = [];
  let probes = 0;
  const breaker = new CircuitBreaker({
    clock,
    threshold: opts.threshold ?? 3,
    probeBaseMs: 1000,
    probeMaxMs: 5000,
    isFailure: (e) => (e as { code?: string }).code === 'ECONNREFUSED',
    probe: async () => {
      const ok = probeResults[probes++] ?? true;
      if (!ok) throw refused;
    },
    onStateChange: (state: BreakerState, previous: BreakerState) => {
      transitions.push(`${previous}->${state}`);
    },
  });
  return { clock, breaker, transitions, probes: () => probes };
}

test('stays closed below the threshold; only counted failures in a row count', async () => {
  const { breaker, clock } = setup([]);
  breaker.recordFailure(refused);
  breaker.recordFailure(refused);
  breaker.recordFailure(constraint); // not a connection failure: ignored
  expect(breaker.consecutiveFailures).toBe(2);
  breaker.recordSuccess();
  expect(breaker.consecutiveFailures).toBe(0);
  breaker.recordFailure(refused);
  breaker.recordFailure(refused);
  expect(breaker.state).toBe('closed');
  expect(clock.pending()).toEqual([]);
});

test('opens at the threshold, probes with doubling capped delays, and closes on the first good probe', async () => {
  const { breaker, clock, transitions, probes } = setup([false, false, false, false, true]);
  for (let i = 0; i < 3; i++) breaker.recordFailure(refused);
  expect(breaker.state).toBe('open');
  expect(transitions).toEqual(['closed->open']);
  expect(clock.pending()).toEqual([1000]);

  await clock.advance(999);
  expect(probes()).toBe(0);
  await clock.advance(1);
  expect(probes()).toBe(1);
  expect(breaker.state).toBe('open');
  expect(clock.pending()).toEqual([2000]);

  await clock.advance(2000);
  expect(clock.pending()).toEqual([4000]);
  await clock.advance(4000);
  expect(clock.pending()).toEqual([5000]); // capped
  await clock.advance(5000);
  expect(probes()).toBe(4);
  expect(clock.pending()).toEqual([5000]);
  await clock.advance(5000);
  expect(probes()).toBe(5);
  expect(breaker.state).toBe('closed');
  expect(breaker.consecutiveFailures).toBe(0);
  expect(clock.pending()).toEqual([]);
  expect(transitions).toEqual([
    'closed->open',
    'open->half-open',
    'half-open->open',
    'open->half-open',
    'half-open->open',
    'open->half-open',
    'half-open->open',
    'open->half-open',
    'half-open->open',
    'open->half-open',
    'half-open->closed',
  ]);

  // Closed again: it takes a full threshold to reopen, and the probe delay starts over.
  breaker.recordFailure(refused);
  breaker.recordFailure(refused);
  expect(breaker.state).toBe('closed');
  breaker.recordFailure(refused);
  expect(breaker.state).toBe('open');
  expect(clock.pending()).toEqual([1000]);
});

test('is half-open while a probe is in flight', async () => {
  const clock = new FakeClock();
  let release!: () => void;
  const breaker = new CircuitBreaker({
    clock,
    threshold: 1,
    probeBaseMs: 100,
    probe: () => new Promise<void>((r) => (release = r)),
  });
  breaker.recordFailure(refused);
  await clock.advance(100);
  expect(breaker.state).toBe('half-open');
  release();
  await flush();
  expect(breaker.state).toBe('closed');
});

test('a success reported while open (a batch in hand got through) closes it and cancels the probe', async () => {
  const { breaker, clock, transitions, probes } = setup([false]);
  for (let i = 0; i < 3; i++) breaker.recordFailure(refused);
  breaker.recordSuccess();
  expect(breaker.state).toBe('closed');
  expect(clock.pending()).toEqual([]);
  await clock.advance(60_000);
  expect(probes()).toBe(0);
  expect(transitions).toEqual(['closed->open', 'open->closed']);
});

test('a probe that resolves after close() (shutdown) changes nothing', async () => {
  const clock = new FakeClock();
  let release!: () => void;
  const states: BreakerState[] = [];
  const breaker = new CircuitBreaker({
    clock,
    threshold: 1,
    probeBaseMs: 100,
    probe: () => new Promise<void>((r) => (release = r)),
    onStateChange: (s) => {
      states.push(s);
    },
  });
  breaker.recordFailure(refused);
  await clock.advance(100);
  breaker.close();
  release();
  await flush();
  expect(states).toEqual(['open', 'half-open']);
  expect(clock.pending()).toEqual([]);
  breaker.recordFailure(refused);
  breaker.recordSuccess();
  expect(states).toEqual(['open', 'half-open']);
});

test('a failing transition callback is reported, not thrown into the caller', async () => {
  const clock = new FakeClock();
  const errors: unknown[] = [];
  const breaker = new CircuitBreaker({
    clock,
    threshold: 1,
    probe: async () => undefined,
    onStateChange: async () => {
      throw new Error('pause failed');
    },
    onError: (e) => errors.push(e),
  });
  expect(() => breaker.recordFailure(refused)).not.toThrow();
  await flush();
  expect(errors).toHaveLength(1);
  expect(breaker.state).toBe('open');
});
