import { QueueKeys } from '../../src/queue/keys';
import {
  desiredReplicas,
  designReplicas,
  evaluateMetrics,
  initialAutoscalerState,
  readScalingSignals,
  scaledObjectModel,
  scalingModifiersFor,
  scalingSignalsFrom,
  ScaledObjectError,
  steadyStateReplicas,
  toMilliQuantity,
  triggerValues,
  type AutoscalerState,
  type ScaledObjectModel,
} from '../../src/scaling';

const keys = new QueueKeys('tradefleet');
const T0 = 1_700_000_000_000;
const at = (seconds: number) => T0 + seconds * 1000;

/** A ScaledObject manifest like the synthesized one, with overridable parts. */
function manifest(
  overrides: { spec?: Record<string, unknown>; modifiers?: Record<string, unknown> | null } = {},
): unknown {
  const mods = scalingModifiersFor({ concurrency: 16, backlogPerWorker: 2000 });
  return {
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledObject',
    metadata: { name: 'tradefleet-worker' },
    spec: {
      scaleTargetRef: { name: 'tradefleet-worker' },
      pollingInterval: 5,
      cooldownPeriod: 120,
      minReplicaCount: 0,
      maxReplicaCount: 20,
      fallback: { failureThreshold: 3, replicas: 2 },
      advanced:
        overrides.modifiers === null
          ? undefined
          : {
              scalingModifiers: { ...mods, ...overrides.modifiers },
              horizontalPodAutoscalerConfig: {
                behavior: {
                  scaleUp: {
                    stabilizationWindowSeconds: 0,
                    selectPolicy: 'Max',
                    policies: [
                      { type: 'Pods', value: 4, periodSeconds: 15 },
                      { type: 'Percent', value: 100, periodSeconds: 15 },
                    ],
                  },
                  scaleDown: {
                    stabilizationWindowSeconds: 60,
                    selectPolicy: 'Max',
                    policies: [{ type: 'Percent', value: 50, periodSeconds: 15 }],
                  },
                },
              },
            },
      triggers: [
        {
          type: 'redis',
          name: 'pending',
          metadata: { listName: keys.pending, listLength: '1', activationListLength: '0' },
        },
        {
          type: 'redis',
          name: 'backlog',
          metadata: { listName: keys.backlog, listLength: '1', activationListLength: '0' },
        },
      ],
      ...overrides.spec,
    },
  };
}

const signals = (pendingPartitions: number, backlog: number) =>
  scalingSignalsFrom(keys, { pendingPartitions, backlog });

describe("tradefleet's formula (DESIGN.md section 4)", () => {
  it('is min(P * T, B * C) over target C * T, integral, with activation above 0', () => {
    expect(scalingModifiersFor({ concurrency: 16, backlogPerWorker: 2000 })).toEqual({
      formula: 'min(pending * 2000, backlog * 16)',
      target: '32000',
      activationTarget: '0',
      metricType: 'AverageValue',
    });
  });

  it('refuses non-integral or non-positive C and T, naming the fix', () => {
    expect(() => scalingModifiersFor({ concurrency: 0, backlogPerWorker: 10 })).toThrow(
      /concurrency \(C\) must be a positive integer.*Fix/,
    );
    expect(() => scalingModifiersFor({ concurrency: 4, backlogPerWorker: 2.5 })).toThrow(
      /backlogPerWorker \(T\)/,
    );
  });

  const model = scaledObjectModel(manifest());
  it.each([
    // One hot partition, 100,000 trades: parallelism 1 caps it: ceil(min(1/16, 100000/2000)) = 1.
    { p: 1, b: 100_000 },
    // Many partitions, little backlog: the backlog caps it: ceil(min(400/16, 3000/2000)) = 2.
    { p: 400, b: 3000 },
    // Many partitions, big backlog: the partitions cap it at 25, then maxReplicaCount at 20.
    { p: 400, b: 1_000_000 },
    // One trade in flight: at least one worker.
    { p: 1, b: 1 },
    // Idle: zero.
    { p: 0, b: 0 },
    // Halted partitions only (backlog, no pending partition): nothing a worker can do, zero.
    { p: 0, b: 50 },
    // Exactly at a boundary: 32 partitions / 16 = 2, backlog 4000 / 2000 = 2 -> 2.
    { p: 32, b: 4000 },
    // Just past it: 33 / 16 = 2.06 -> 3 (the HPA rounds up).
    { p: 33, b: 1_000_000 },
  ])('P=$p B=$b: the ScaledObject gives what ceil(min(P/C, B/T)) gives', ({ p, b }) => {
    const expected = designReplicas(
      { concurrency: 16, backlogPerWorker: 2000 },
      { pendingPartitions: p, backlog: b },
      { min: 0, max: 20 },
    );
    expect(steadyStateReplicas(model, signals(p, b))).toBe(expected);
  });
});

describe('KEDA metrics and activation', () => {
  it.each([
    // KEDA stores the formula result with SetMilli(int64(v * 1000)): truncated to thousandths.
    { value: 0.0625, expected: 0.062 },
    { value: 0.0005, expected: 0 },
    { value: 25, expected: 25 },
    { value: 1.9999, expected: 1.999 },
  ])('toMilliQuantity($value) = $expected', ({ value, expected }) => {
    expect(toMilliQuantity(value)).toBe(expected);
  });

  it('with scalingModifiers, the ScaledObject is active when the composite metric is above activationTarget', () => {
    const model = scaledObjectModel(manifest());
    expect(evaluateMetrics(model, { pending: 1, backlog: 1 })).toMatchObject({
      composite: 16,
      active: true,
      hpaTarget: 32000,
    });
    expect(evaluateMetrics(model, { pending: 0, backlog: 0 })).toMatchObject({ composite: 0, active: false });
    const higher = scaledObjectModel(manifest({ modifiers: { activationTarget: '16' } }));
    // Strictly above: 16 is not > 16.
    expect(evaluateMetrics(higher, { pending: 1, backlog: 1 }).active).toBe(false);
  });

  it('why the formula is scaled by C*T: the naive min(P/C, B/T) over target 1 truncates one waiting trade to 0 (inactive)', () => {
    const naive = scaledObjectModel(
      manifest({ modifiers: { formula: 'min(pending / 16, backlog / 2000)', target: '1' } }),
    );
    const m = evaluateMetrics(naive, { pending: 1, backlog: 1 });
    expect(m.composite).toBe(0); // 0.0005 -> 0 milli
    expect(m.active).toBe(false);
  });

  it('without scalingModifiers, any trigger above its activation threshold activates (redis: length > activationListLength)', () => {
    const m = scaledObjectModel(
      manifest({
        modifiers: null,
        spec: {
          triggers: [
            {
              type: 'redis',
              name: 'pending',
              metadata: { listName: keys.pending, listLength: '16', activationListLength: '5' },
            },
            { type: 'redis', name: 'backlog', metadata: { listName: keys.backlog, listLength: '2000' } },
          ],
        },
      }),
    );
    expect(evaluateMetrics(m, { pending: 5, backlog: 0 }).active).toBe(false); // 5 is not > 5, 0 is not > 0
    expect(evaluateMetrics(m, { pending: 0, backlog: 1 }).active).toBe(true); // default activationListLength 0
    // The HPA takes the metric asking for the most replicas: 400/16 = 25 over 3000/2000 = 2.
    expect(evaluateMetrics(m, { pending: 400, backlog: 3000 })).toMatchObject({
      hpaMetric: 400,
      hpaTarget: 16,
    });
  });

  it('each trigger reads the key named by its listName; an unknown key is an error naming the fix', () => {
    const model = scaledObjectModel(manifest());
    expect(triggerValues(model, signals(3, 70))).toEqual({ pending: 3, backlog: 70 });
    const other = scalingSignalsFrom(new QueueKeys('other'), { pendingPartitions: 3, backlog: 70 });
    expect(() => triggerValues(model, other)).toThrow(
      /reads key "tf:\{tradefleet\}:pending".*Fix: synthesize/,
    );
  });
});

describe('reading a ScaledObject manifest', () => {
  it('applies KEDA defaults: pollingInterval 30, cooldownPeriod 300, min 0, max 100, HPA default behavior', () => {
    const m = scaledObjectModel({
      apiVersion: 'keda.sh/v1alpha1',
      kind: 'ScaledObject',
      spec: { scaleTargetRef: { name: 'w' }, triggers: [{ type: 'redis', metadata: { listName: 'l' } }] },
    });
    expect(m).toMatchObject({
      pollingIntervalSeconds: 30,
      cooldownPeriodSeconds: 300,
      minReplicaCount: 0,
      maxReplicaCount: 100,
    });
    expect(m.triggers[0]).toMatchObject({ listLength: 5, activationListLength: 0 });
    expect(m.behavior.scaleDown.stabilizationWindowSeconds).toBe(300);
  });

  it.each([
    { m: { kind: 'Deployment' }, message: /expected a keda.sh\/v1alpha1 ScaledObject/ },
    {
      m: manifest({ spec: { minReplicaCount: 5, maxReplicaCount: 2 } }),
      message: /minReplicaCount=5 must be <= spec.maxReplicaCount=2/,
    },
    { m: manifest({ modifiers: { formula: 'min(pending, lag)' } }), message: /unknown name "lag"/ },
    { m: manifest({ modifiers: { target: '0' } }), message: /target must be > 0/ },
    {
      m: manifest({ spec: { triggers: [{ type: 'cpu', metadata: {} }] } }),
      message: /only "redis" triggers/,
    },
    {
      m: manifest({ spec: { triggers: [{ type: 'redis', metadata: { listName: 'x' } }] } }),
      message: /name is required when scalingModifiers.formula is set/,
    },
  ])('rejects: $message', ({ m, message }) => {
    expect(() => scaledObjectModel(m)).toThrow(message);
  });

  it('rejects a ScaledObject without triggers', () => {
    expect(() => scaledObjectModel(manifest({ spec: { triggers: [] } }))).toThrow(ScaledObjectError);
  });
});

describe('desiredReplicas: KEDA activation and cooldown around the HPA', () => {
  const model: ScaledObjectModel = scaledObjectModel(manifest());
  const step = (s: AutoscalerState, p: number, b: number, t: number) =>
    desiredReplicas(signals(p, b), model, s, at(t));

  it.each([
    // Activation: at 0 replicas, an active ScaledObject goes to max(minReplicaCount, 1) = 1; the HPA takes over from there.
    { replicas: 0, p: 400, b: 1_000_000, expected: 1, reason: 'activate' },
    // Not active at 0 replicas: stays at 0.
    { replicas: 0, p: 0, b: 0, expected: 0, reason: 'idle' },
    // Halted partitions only: backlog without pending partitions keeps it at 0.
    { replicas: 0, p: 0, b: 10, expected: 0, reason: 'idle' },
  ])('from $replicas with P=$p B=$b -> $expected ($reason)', ({ replicas, p, b, expected, reason }) => {
    const d = step(initialAutoscalerState(at(0), replicas), p, b, 0);
    expect(d).toMatchObject({ replicas: expected, reason });
  });

  it('scale-out to the cap, drain, cooldown, back to zero', () => {
    let s = initialAutoscalerState(at(0));
    const trace: [number, number, string][] = [];
    const run = (p: number, b: number, t: number) => {
      const d = step(s, p, b, t);
      s = d.state;
      trace.push([t, d.replicas, d.reason]);
      return d;
    };
    run(400, 1_000_000, 0); // activate -> 1
    run(400, 1_000_000, 5); // HPA: +4 pods beats +100% from 1 -> 5
    run(400, 1_000_000, 20); // a new 15 s period: +100% -> 10
    run(400, 1_000_000, 35); // -> 20 (25 wanted, maxReplicaCount 20)
    expect(s.replicas).toBe(20);
    run(0, 0, 40); // drained: inactive, within cooldown and the scale-down window
    expect(s.replicas).toBe(20);
    run(0, 0, 94); // 60 s scale-down window: the recommendation of t=35 (25) still counts
    expect(s.replicas).toBe(20);
    run(0, 0, 96); // out of the window: -50% per 15 s -> 10
    expect(s.replicas).toBe(10);
    run(0, 0, 111); // a new 15 s period -> 5
    expect(s.replicas).toBe(5);
    const d = run(0, 0, 160); // 120 s since the last active poll (t=35): KEDA scales to zero
    expect(d).toMatchObject({ replicas: 0, reason: 'deactivate' });
    expect(trace.map(([, r]) => r)).toEqual([1, 5, 10, 20, 20, 20, 10, 5, 0]);
  });

  it('minReplicaCount > 0: never below it, even when idle', () => {
    const m = scaledObjectModel(manifest({ spec: { minReplicaCount: 2 } }));
    const d = desiredReplicas(signals(0, 0), m, initialAutoscalerState(at(0)), at(0));
    expect(d.replicas).toBe(2);
    const later = desiredReplicas(signals(0, 0), m, { ...d.state, lastActiveAt: at(-1000) }, at(1000));
    expect(later.replicas).toBe(2);
  });

  it('initialCooldownPeriod 0: a Deployment created with 1 replica and never active goes to zero at once', () => {
    const d = desiredReplicas(signals(0, 0), model, initialAutoscalerState(at(0), 1), at(5));
    expect(d).toMatchObject({ replicas: 0, reason: 'deactivate' });
  });

  it('fallback: after more than failureThreshold failed reads, fallback.replicas; before that, unchanged', () => {
    let s = initialAutoscalerState(at(0), 7);
    const reasons: string[] = [];
    for (let i = 1; i <= 4; i++) {
      const d = desiredReplicas(null, model, s, at(i * 5));
      s = d.state;
      reasons.push(`${d.reason}:${d.replicas}`);
    }
    expect(reasons).toEqual(['error:7', 'error:7', 'error:7', 'fallback:2']);
    // A good read resets the failure count.
    expect(desiredReplicas(signals(1, 1), model, s, at(30)).state.failures).toBe(0);
  });
});

describe('readScalingSignals', () => {
  it('reads ZCARD of the pending set and HLEN of the backlog hash in one MULTI, keyed by key name', async () => {
    const calls: string[] = [];
    const chain = {
      zcard: (k: string) => (calls.push(`zcard ${k}`), chain),
      hlen: (k: string) => (calls.push(`hlen ${k}`), chain),
      zrange: (k: string) => (calls.push(`zrange ${k}`), chain),
      time: () => (calls.push('time'), chain),
      exec: async () => [
        [null, 3],
        [null, 120],
        [null, ['acct_book_sec', '1700000000000']],
        [null, 1],
        [null, ['1700000001', '500000']],
      ],
    };
    const redis = { multi: () => chain } as unknown as Parameters<typeof readScalingSignals>[0];
    const s = await readScalingSignals(redis, keys);
    expect(s).toEqual({
      pendingPartitions: 3,
      backlog: 120,
      oldestAgeMs: 1500,
      keyLengths: { 'tf:{tradefleet}:pending': 3, 'tf:{tradefleet}:backlog': 120 },
    });
    expect(calls).toContain(`zcard ${keys.pending}`);
    expect(calls).toContain(`hlen ${keys.backlog}`);
  });
});
