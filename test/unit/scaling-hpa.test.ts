import {
  averageValueReplicas,
  clamp,
  DEFAULT_SCALE_DOWN,
  DEFAULT_SCALE_UP,
  EMPTY_HPA_STATE,
  hpaStep,
  scaleDownLimit,
  scaleUpLimit,
  stabilize,
  type HpaBehavior,
  type ScalingRules,
} from '../../src/scaling/hpa';

const T0 = 1_000_000_000;
const s = (seconds: number) => T0 + seconds * 1000;

describe('HPA AverageValue replicas with tolerance', () => {
  it.each([
    // Outside the tolerance, desired = ceil(metric / target): 100 / 10 = 10.
    { metric: 100, target: 10, current: 5, expected: 10 },
    // Fractions round up: 111 / 10 = 11.1 -> 12 (ratio 1.11 is outside the 10% tolerance).
    { metric: 111, target: 10, current: 10, expected: 12 },
    // |ratio - 1| <= 0.1 means no change: 105 / (10 * 10) = 1.05.
    { metric: 105, target: 10, current: 10, expected: 10 },
    // The tolerance is inclusive: ratio exactly 1.1 keeps the count.
    { metric: 110, target: 10, current: 10, expected: 10 },
    // ...and so is 0.9 on the way down.
    { metric: 90, target: 10, current: 10, expected: 10 },
    // Just below 0.9 scales down: ceil(89 / 10) = 9.
    { metric: 89, target: 10, current: 10, expected: 9 },
    // A zero metric asks for zero (min/max clamping comes later).
    { metric: 0, target: 10, current: 3, expected: 0 },
    // With no current replicas there is no ratio: plain ceil(metric / target).
    { metric: 1, target: 32000, current: 0, expected: 1 },
    // The metric is the total over the fleet, not per pod: 800000 / 32000 = 25 whatever the current count.
    { metric: 800_000, target: 32_000, current: 3, expected: 25 },
  ])(
    'metric $metric, target $target, current $current -> $expected',
    ({ metric, target, current, expected }) => {
      expect(averageValueReplicas(metric, target, current)).toBe(expected);
    },
  );

  it.each([
    // A configurable per-direction tolerance (HPAConfigurableTolerance): 1% up scales on a 2% rise.
    { metric: 102, tolerance: { up: 0.01, down: 0.1 }, expected: 11 },
    // ...while the 10% down tolerance still holds a 5% dip.
    { metric: 95, tolerance: { up: 0.01, down: 0.1 }, expected: 10 },
  ])('tolerance $tolerance, metric $metric -> $expected', ({ metric, tolerance, expected }) => {
    expect(averageValueReplicas(metric, 10, 10, tolerance)).toBe(expected);
  });

  it('refuses a non-positive target', () => {
    expect(() => averageValueReplicas(1, 0, 1)).toThrow(RangeError);
  });

  it.each([
    // min/max replicas bound the result on both sides.
    { replicas: 0, min: 1, max: 20, expected: 1 },
    { replicas: 25, min: 1, max: 20, expected: 20 },
    { replicas: 7, min: 1, max: 20, expected: 7 },
  ])('clamp($replicas, $min, $max) = $expected', ({ replicas, min, max, expected }) => {
    expect(clamp(replicas, min, max)).toBe(expected);
  });
});

const behavior = (scaleUp: Partial<ScalingRules>, scaleDown: Partial<ScalingRules>): HpaBehavior => ({
  scaleUp: { ...DEFAULT_SCALE_UP, ...scaleUp },
  scaleDown: { ...DEFAULT_SCALE_DOWN, ...scaleDown },
});

describe('HPA stabilization windows', () => {
  it.each([
    // Scale-down uses the highest recommendation within its window (300 s by default): a dip to 4 holds at 10.
    { desired: 4, current: 10, history: [{ at: s(-60), replicas: 10 }], b: behavior({}, {}), expected: 10 },
    // Recommendations older than the window no longer count.
    { desired: 4, current: 10, history: [{ at: s(-400), replicas: 10 }], b: behavior({}, {}), expected: 4 },
    // Within the window the highest of all counts, including ones lower than current.
    {
      desired: 2,
      current: 10,
      history: [
        { at: s(-60), replicas: 6 },
        { at: s(-30), replicas: 5 },
      ],
      b: behavior({}, {}),
      expected: 6,
    },
    // Scale-up has no window by default (0 s): the new, higher recommendation applies at once.
    { desired: 20, current: 10, history: [{ at: s(-5), replicas: 12 }], b: behavior({}, {}), expected: 20 },
    // With a scale-up window, the lowest recommendation within it caps the rise.
    {
      desired: 20,
      current: 10,
      history: [{ at: s(-30), replicas: 12 }],
      b: behavior({ stabilizationWindowSeconds: 60 }, {}),
      expected: 12,
    },
    // A scale-down window of 0 follows the metric down immediately.
    {
      desired: 3,
      current: 10,
      history: [{ at: s(-5), replicas: 10 }],
      b: behavior({}, { stabilizationWindowSeconds: 0 }),
      expected: 3,
    },
  ])('desired $desired from $current -> $expected', ({ desired, current, history, b, expected }) => {
    const r = stabilize(desired, current, history, b, T0);
    expect(r.replicas).toBe(expected);
    expect(r.history[r.history.length - 1]).toEqual({ at: T0, replicas: desired });
  });

  it('drops recommendations older than both windows', () => {
    const r = stabilize(
      5,
      5,
      [
        { at: s(-1000), replicas: 9 },
        { at: s(-10), replicas: 7 },
      ],
      behavior({}, {}),
      T0,
    );
    expect(r.history).toEqual([
      { at: s(-10), replicas: 7 },
      { at: T0, replicas: 5 },
    ]);
  });
});

describe('HPA scaling policies', () => {
  const up = DEFAULT_SCALE_UP; // Pods 4 / 15 s and Percent 100 / 15 s, selectPolicy Max
  it.each([
    // Max picks the policy allowing the biggest change: from 2, +4 pods (6) beats +100% (4).
    { current: 2, rules: up, events: [], expected: 6 },
    // From 10, +100% (20) beats +4 pods (14).
    { current: 10, rules: up, events: [], expected: 20 },
    // Min picks the smallest change: 14.
    { current: 10, rules: { ...up, selectPolicy: 'Min' as const }, events: [], expected: 14 },
    // Disabled: no scale-up at all.
    { current: 10, rules: { ...up, selectPolicy: 'Disabled' as const }, events: [], expected: 10 },
    // Each period counts from the replicas at its start: 4 were added 5 s ago, so from 6 the 15 s period began at 2 -> max(2+4, 2*2) = 6.
    { current: 6, rules: up, events: [{ at: s(-5), change: 4 }], expected: 6 },
    // Events older than the period no longer count.
    { current: 6, rules: up, events: [{ at: s(-20), change: 4 }], expected: 12 },
    // Percent rounds up, so one replica can still grow by 50%: ceil(1 * 1.5) = 2.
    {
      current: 1,
      rules: { ...up, policies: [{ type: 'Percent' as const, value: 50, periodSeconds: 60 }] },
      events: [],
      expected: 2,
    },
  ])('scale-up limit from $current -> $expected', ({ current, rules, events, expected }) => {
    expect(scaleUpLimit(current, events, rules, T0)).toBe(expected);
  });

  const down: ScalingRules = {
    stabilizationWindowSeconds: 180,
    selectPolicy: 'Max',
    policies: [
      { type: 'Percent', value: 25, periodSeconds: 60 },
      { type: 'Pods', value: 1, periodSeconds: 60 },
    ],
  };
  it.each([
    // Max = the policy removing the most: from 20, -25% (15) beats -1 pod (19).
    { current: 20, rules: down, events: [], expected: 15 },
    // Percent rounds the replicas kept down: floor(2 * 0.75) = 1, same as -1 pod.
    { current: 2, rules: down, events: [], expected: 1 },
    // Min = the policy removing the fewest: 19.
    { current: 20, rules: { ...down, selectPolicy: 'Min' as const }, events: [], expected: 19 },
    // Disabled: never scale down.
    { current: 20, rules: { ...down, selectPolicy: 'Disabled' as const }, events: [], expected: 20 },
    // 5 removed 30 s ago: the 60 s period began at 20, so 15 is already the floor.
    { current: 15, rules: down, events: [{ at: s(-30), change: -5 }], expected: 15 },
    // The default scale-down policy allows removing 100% in 15 s.
    { current: 10, rules: DEFAULT_SCALE_DOWN, events: [], expected: 0 },
  ])('scale-down limit from $current -> $expected', ({ current, rules, events, expected }) => {
    expect(scaleDownLimit(current, events, rules, T0)).toBe(expected);
  });
});

describe('one HPA sync (hpaStep)', () => {
  const b: HpaBehavior = {
    scaleUp: DEFAULT_SCALE_UP,
    scaleDown: {
      stabilizationWindowSeconds: 180,
      selectPolicy: 'Max',
      policies: [
        { type: 'Percent', value: 25, periodSeconds: 60 },
        { type: 'Pods', value: 1, periodSeconds: 60 },
      ],
    },
  };
  const input = (metric: number, current: number) => ({
    metric,
    target: 32000,
    currentReplicas: current,
    minReplicas: 1,
    maxReplicas: 20,
    behavior: b,
  });

  it('fast scale-up: 1 -> 5 -> 10 -> 20, limited by the policies, capped by maxReplicas', () => {
    let st = EMPTY_HPA_STATE;
    let current = 1;
    const seen: number[] = [];
    for (let i = 0; i < 4; i++) {
      const d = hpaStep(input(800_000, current), st, s(i * 15));
      st = d.state;
      current = d.replicas;
      seen.push(current);
    }
    // +4 pods (5) beats +100% (2); then +100% each 15 s; 25 wanted, max 20.
    expect(seen).toEqual([5, 10, 20, 20]);
  });

  it('stabilized scale-down: holds the window, then at most 25% per minute', () => {
    let st = EMPTY_HPA_STATE;
    let d = hpaStep(input(640_000, 20), st, s(0)); // 20 wanted, 20 running
    st = d.state;
    d = hpaStep(input(0, 20), st, s(60)); // idle, but 20 was recommended 60 s ago
    expect(d.replicas).toBe(20);
    expect(d.reason).toBe('stabilized');
    d = hpaStep(input(0, 20), d.state, s(181)); // the 20 fell out of the 180 s window
    expect(d.replicas).toBe(15);
    expect(d.reason).toBe('scale-down-limit');
    d = hpaStep(input(0, 15), d.state, s(200)); // within the same minute: no further removal
    expect(d.replicas).toBe(15);
    d = hpaStep(input(0, 15), d.state, s(242));
    // A new minute: Max picks the policy removing the most, floor(15 * 0.75) = 11 over 15 - 1 = 14.
    expect(d.replicas).toBe(11);
  });

  it('a fresh HPA seeds its scale-down window with the current count', () => {
    const d = hpaStep(input(0, 6), EMPTY_HPA_STATE, s(0));
    expect(d.replicas).toBe(6);
  });

  it('never goes below minReplicas (KEDA sets it to at least 1)', () => {
    const fast: HpaBehavior = {
      scaleUp: DEFAULT_SCALE_UP,
      scaleDown: { ...DEFAULT_SCALE_DOWN, stabilizationWindowSeconds: 0 },
    };
    const d = hpaStep(
      { ...input(0, 4), behavior: fast },
      { initialized: true, recommendations: [], events: [] },
      s(0),
    );
    expect(d.replicas).toBe(1);
    expect(d.reason).toBe('min');
  });
});
