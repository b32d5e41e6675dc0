/**
 * The replica arithmetic of the Kubernetes HorizontalPodAutoscaler (autoscaling/v2)
 * for one External metric with an AverageValue target, which is what KEDA hands
 * the HPA it creates for a ScaledObject. Pure functions; time is milliseconds.
 *
 * Modelled on the documented algorithm (kubernetes.io "Horizontal Pod
 * Autoscaling", "Algorithm details" and "Configurable scaling behavior"):
 *
 * 1. desired = ceil(metric / target), unless |metric / (target * current) - 1|
 *    is within the tolerance (10% by default), in which case nothing changes;
 * 2. stabilization: the result may not exceed the highest recommendation of the
 *    scale-down window (so a dip does not scale in at once), nor fall below the
 *    lowest one of the scale-up window;
 * 3. rate limits: the scaling policies bound the change per period, chosen by
 *    selectPolicy (Max: the policy allowing the largest change, Min: the
 *    smallest, Disabled: no change in that direction);
 * 4. min/max replicas clamp the result.
 */

export type PolicyType = 'Pods' | 'Percent';
export type SelectPolicy = 'Max' | 'Min' | 'Disabled';

export interface ScalingPolicy {
  readonly type: PolicyType;
  /** Pods added/removed, or percent of the replicas at the start of the period. > 0. */
  readonly value: number;
  /** 1..1800. */
  readonly periodSeconds: number;
}

export interface ScalingRules {
  readonly stabilizationWindowSeconds: number;
  readonly selectPolicy: SelectPolicy;
  readonly policies: readonly ScalingPolicy[];
}

export interface HpaBehavior {
  readonly scaleUp: ScalingRules;
  readonly scaleDown: ScalingRules;
}

/** The HPA defaults when `behavior` (or one direction of it) is not set. */
export const DEFAULT_SCALE_UP: ScalingRules = Object.freeze<ScalingRules>({
  stabilizationWindowSeconds: 0,
  selectPolicy: 'Max',
  policies: [
    { type: 'Pods', value: 4, periodSeconds: 15 },
    { type: 'Percent', value: 100, periodSeconds: 15 },
  ],
});
export const DEFAULT_SCALE_DOWN: ScalingRules = Object.freeze<ScalingRules>({
  stabilizationWindowSeconds: 300,
  selectPolicy: 'Max',
  policies: [{ type: 'Percent', value: 100, periodSeconds: 15 }],
});
/** kube-controller-manager's --horizontal-pod-autoscaler-tolerance default. */
export const DEFAULT_TOLERANCE = 0.1;

export interface Tolerance {
  /** Ratio above 1 under which there is no scale-up. @default 0.1 */
  readonly up: number;
  /** Ratio below 1 under which there is no scale-down. @default 0.1 */
  readonly down: number;
}

/**
 * Replicas for an External metric with an AverageValue target, as the HPA's
 * replica calculator computes them: the metric is the total over all pods, so
 * the usage ratio is metric / (target * current). Inside the tolerance the
 * current count is kept; outside it the count is ceil(metric / target).
 * Values are compared in milli-units, as the HPA does with Quantities.
 */
export function averageValueReplicas(
  metric: number,
  target: number,
  currentReplicas: number,
  tolerance: Tolerance = { up: DEFAULT_TOLERANCE, down: DEFAULT_TOLERANCE },
): number {
  if (!(target > 0)) throw new RangeError(`AverageValue target must be > 0, got ${target}`);
  const usage = Math.round(metric * 1000);
  const targetMilli = Math.round(target * 1000);
  if (currentReplicas > 0) {
    const ratio = usage / (targetMilli * currentReplicas);
    // Written as the HPA writes it (1 - down <= ratio <= 1 + up), so that the
    // float edges fall the same way: a ratio of exactly 1.1 is within.
    const within = 1 - tolerance.down <= ratio && ratio <= 1 + tolerance.up;
    if (within) return currentReplicas;
  }
  return Math.ceil(usage / targetMilli);
}

export function clamp(replicas: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, replicas));
}

export interface Recommendation {
  readonly at: number;
  readonly replicas: number;
}

/** A change of replicas the HPA made: positive for scale-up, negative for scale-down. */
export interface ScaleEvent {
  readonly at: number;
  readonly change: number;
}

/**
 * Stabilization: bound `desired` by the recommendations of the last
 * stabilizationWindowSeconds. Scale-down uses the highest recommendation in its
 * window, scale-up the lowest in its own; both windows include `desired` itself.
 * Returns the stabilized value and the history with `desired` recorded and
 * entries older than both windows dropped.
 */
export function stabilize(
  desired: number,
  current: number,
  history: readonly Recommendation[],
  behavior: HpaBehavior,
  now: number,
): { replicas: number; history: Recommendation[] } {
  const upCutoff = now - behavior.scaleUp.stabilizationWindowSeconds * 1000;
  const downCutoff = now - behavior.scaleDown.stabilizationWindowSeconds * 1000;
  let upRecommendation = desired;
  let downRecommendation = desired;
  for (const r of history) {
    if (r.at > upCutoff) upRecommendation = Math.min(upRecommendation, r.replicas);
    if (r.at > downCutoff) downRecommendation = Math.max(downRecommendation, r.replicas);
  }
  let replicas = current;
  if (replicas < upRecommendation) replicas = upRecommendation;
  if (replicas > downRecommendation) replicas = downRecommendation;
  const oldest = Math.min(upCutoff, downCutoff);
  const kept = history.filter((r) => r.at > oldest);
  kept.push({ at: now, replicas: desired });
  return { replicas, history: kept };
}

function changeInPeriod(
  events: readonly ScaleEvent[],
  periodSeconds: number,
  now: number,
  sign: 1 | -1,
): number {
  const cutoff = now - periodSeconds * 1000;
  let sum = 0;
  for (const e of events) if (e.at > cutoff && Math.sign(e.change) === sign) sum += Math.abs(e.change);
  return sum;
}

/**
 * The most replicas the scale-up policies allow now. Each policy measures from
 * the replica count at the start of its period (current minus what was added
 * plus what was removed within it); Percent rounds up so that a small
 * deployment can still grow.
 */
export function scaleUpLimit(
  current: number,
  events: readonly ScaleEvent[],
  rules: ScalingRules,
  now: number,
): number {
  if (rules.selectPolicy === 'Disabled') return current;
  let result = rules.selectPolicy === 'Min' ? Infinity : -Infinity;
  for (const p of rules.policies) {
    const start =
      current -
      changeInPeriod(events, p.periodSeconds, now, 1) +
      changeInPeriod(events, p.periodSeconds, now, -1);
    const proposed = p.type === 'Pods' ? start + p.value : Math.ceil(start * (1 + p.value / 100));
    result = rules.selectPolicy === 'Min' ? Math.min(result, proposed) : Math.max(result, proposed);
  }
  return Number.isFinite(result) ? result : current;
}

/** The fewest replicas the scale-down policies allow now (Percent rounds down the replicas kept). */
export function scaleDownLimit(
  current: number,
  events: readonly ScaleEvent[],
  rules: ScalingRules,
  now: number,
): number {
  if (rules.selectPolicy === 'Disabled') return current;
  let result = rules.selectPolicy === 'Min' ? -Infinity : Infinity;
  for (const p of rules.policies) {
    const start =
      current -
      changeInPeriod(events, p.periodSeconds, now, 1) +
      changeInPeriod(events, p.periodSeconds, now, -1);
    const proposed = p.type === 'Pods' ? start - p.value : Math.floor(start * (1 - p.value / 100));
    result = rules.selectPolicy === 'Min' ? Math.max(result, proposed) : Math.min(result, proposed);
  }
  return Number.isFinite(result) ? result : current;
}

export interface HpaState {
  /** False until the first sync: the HPA then seeds its scale-down window with the current count. */
  readonly initialized: boolean;
  readonly recommendations: readonly Recommendation[];
  readonly events: readonly ScaleEvent[];
}

export const EMPTY_HPA_STATE: HpaState = Object.freeze({
  initialized: false,
  recommendations: [],
  events: [],
});

export interface HpaInput {
  /** The metric's total value (for KEDA: the composite metric). */
  readonly metric: number;
  /** The AverageValue target. */
  readonly target: number;
  readonly currentReplicas: number;
  readonly minReplicas: number;
  readonly maxReplicas: number;
  readonly behavior: HpaBehavior;
  readonly tolerance?: Tolerance;
}

export interface HpaDecision {
  readonly replicas: number;
  /** ceil(metric / target) or current, before stabilization and limits. */
  readonly raw: number;
  readonly reason:
    'within-tolerance' | 'stabilized' | 'scale-up-limit' | 'scale-down-limit' | 'min' | 'max' | 'desired';
  readonly state: HpaState;
}

/** One HPA sync: tolerance, stabilization, policies, min/max; records the recommendation and the event. */
export function hpaStep(input: HpaInput, state: HpaState, now: number): HpaDecision {
  const { currentReplicas: current, behavior } = input;
  const raw = averageValueReplicas(input.metric, input.target, current, input.tolerance);
  // A new HPA records the current count as its first recommendation, so that
  // it does not scale down the moment it is created.
  const seeded = state.initialized ? state.recommendations : [{ at: now, replicas: current }];
  const stab = stabilize(raw, current, seeded, behavior, now);
  let replicas = stab.replicas;
  let reason: HpaDecision['reason'] =
    raw === current && replicas === current
      ? 'within-tolerance'
      : replicas !== raw
        ? 'stabilized'
        : 'desired';
  if (replicas > current) {
    const limit = Math.max(current, scaleUpLimit(current, state.events, behavior.scaleUp, now));
    const allowed = Math.min(input.maxReplicas, limit);
    if (replicas > allowed) {
      replicas = allowed;
      reason = allowed === input.maxReplicas ? 'max' : 'scale-up-limit';
    }
  } else if (replicas < current) {
    const limit = Math.min(current, scaleDownLimit(current, state.events, behavior.scaleDown, now));
    const allowed = Math.max(input.minReplicas, limit);
    if (replicas < allowed) {
      replicas = allowed;
      reason = allowed === input.minReplicas ? 'min' : 'scale-down-limit';
    }
  }
  // Outside the policies, the HPA still never leaves [min, max].
  if (replicas > input.maxReplicas) [replicas, reason] = [input.maxReplicas, 'max'];
  if (replicas < input.minReplicas) [replicas, reason] = [input.minReplicas, 'min'];
  const longest = Math.max(
    0,
    ...behavior.scaleUp.policies.map((p) => p.periodSeconds),
    ...behavior.scaleDown.policies.map((p) => p.periodSeconds),
  );
  const events = state.events.filter((e) => e.at > now - longest * 1000);
  if (replicas !== current) events.push({ at: now, change: replicas - current });
  return { replicas, raw, reason, state: { initialized: true, recommendations: stab.history, events } };
}
