/**
 * `desiredReplicas`: one poll of KEDA and its HPA, as a pure function, for the
 * local autoscaler (`tradefleet dev --autoscale`) and for the tests that read
 * the synthesized ScaledObject.
 *
 * KEDA polls every pollingInterval and owns 0 <-> 1 (activation, cooldown);
 * the HPA syncs every 15 s and owns 1 <-> N. Calling this once per
 * pollingInterval applies both in one step, which is close enough for a
 * single-machine stand-in; the arithmetic of each step is the real one.
 */
import { EMPTY_HPA_STATE, hpaStep, type HpaState } from './hpa';
import { evaluateMetrics, hpaMinReplicas, type MetricsEvaluation, type ScaledObjectModel } from './keda';
import { triggerValues, type ScalingSignals } from './signals';

export interface AutoscalerState {
  /** Replicas the workload has now (what the autoscaler last applied). */
  readonly replicas: number;
  /** Last poll at which the ScaledObject was active (ms), or null if never. */
  readonly lastActiveAt: number | null;
  /** When the ScaledObject was created (ms), for initialCooldownPeriod. */
  readonly createdAt: number;
  /** Consecutive polls whose signals could not be read. */
  readonly failures: number;
  readonly hpa: HpaState;
}

export function initialAutoscalerState(now: number, replicas = 0): AutoscalerState {
  return { replicas, lastActiveAt: null, createdAt: now, failures: 0, hpa: EMPTY_HPA_STATE };
}

export type DecisionReason =
  | 'activate' // 0 -> max(min, 1): KEDA, on activation
  | 'idle' // stays at 0: not active
  | 'cooldown' // inactive but within cooldownPeriod: the HPA keeps >= 1
  | 'deactivate' // -> 0: KEDA, after cooldownPeriod of inactivity
  | 'fallback' // signals failing past failureThreshold: fallback.replicas
  | 'error' // signals failing, threshold not reached: unchanged
  | 'hpa'; // the HPA's decision

export interface ReplicaDecision {
  readonly replicas: number;
  readonly reason: DecisionReason;
  /** The HPA's own reason when it decided. */
  readonly hpaReason?: string;
  readonly metrics?: MetricsEvaluation;
  readonly state: AutoscalerState;
}

/**
 * The replicas KEDA + HPA would set for the worker Deployment at `now` (ms),
 * given the signals (null when Redis could not be read), the ScaledObject's
 * model and the previous state. Returns the new state to pass next time.
 */
export function desiredReplicas(
  signals: ScalingSignals | null,
  config: ScaledObjectModel,
  state: AutoscalerState,
  now: number,
): ReplicaDecision {
  const current = state.replicas;
  if (signals === null) {
    const failures = state.failures + 1;
    // KEDA scales to fallback.replicas once a trigger failed more than failureThreshold times in a row.
    if (config.fallback && config.fallback.replicas > 0 && failures > config.fallback.failureThreshold) {
      const replicas = Math.min(config.fallback.replicas, config.maxReplicaCount);
      return { replicas, reason: 'fallback', state: { ...state, failures, replicas } };
    }
    return { replicas: current, reason: 'error', state: { ...state, failures } };
  }

  const metrics = evaluateMetrics(config, triggerValues(config, signals));
  const base = { ...state, failures: 0 };
  const lastActiveAt = metrics.active ? now : state.lastActiveAt;

  if (current === 0) {
    if (metrics.active) {
      const replicas = Math.max(config.minReplicaCount, 1);
      return { replicas, reason: 'activate', metrics, state: { ...base, replicas, lastActiveAt } };
    }
    if (config.minReplicaCount > 0) {
      const replicas = config.minReplicaCount;
      return { replicas, reason: 'activate', metrics, state: { ...base, replicas, lastActiveAt } };
    }
    return { replicas: 0, reason: 'idle', metrics, state: { ...base, lastActiveAt } };
  }

  if (!metrics.active && config.minReplicaCount === 0) {
    const cooldownMs =
      (state.lastActiveAt === null ? config.initialCooldownPeriodSeconds : config.cooldownPeriodSeconds) *
      1000;
    const since = state.lastActiveAt ?? state.createdAt;
    if (now - since >= cooldownMs) {
      return { replicas: 0, reason: 'deactivate', metrics, state: { ...base, replicas: 0, lastActiveAt } };
    }
  }

  const hpa = hpaStep(
    {
      metric: metrics.hpaMetric,
      target: metrics.hpaTarget,
      currentReplicas: current,
      minReplicas: hpaMinReplicas(config),
      maxReplicas: config.maxReplicaCount,
      behavior: config.behavior,
    },
    state.hpa,
    now,
  );
  return {
    replicas: hpa.replicas,
    reason: metrics.active ? 'hpa' : 'cooldown',
    hpaReason: hpa.reason,
    metrics,
    state: { ...base, replicas: hpa.replicas, lastActiveAt, hpa: hpa.state },
  };
}

/**
 * The replicas the ScaledObject's numbers give for these signals from a cold
 * start of the HPA, ignoring stabilization and rate limits: KEDA's activation
 * decides 0 or not, then ceil(metric / target) clamped to [max(min, 1), max].
 * This is where the fleet settles once the behavior windows have passed.
 */
export function steadyStateReplicas(config: ScaledObjectModel, signals: ScalingSignals): number {
  const metrics = evaluateMetrics(config, triggerValues(config, signals));
  if (!metrics.active) return config.minReplicaCount;
  const raw = Math.ceil(Math.round(metrics.hpaMetric * 1000) / Math.round(metrics.hpaTarget * 1000));
  return Math.min(config.maxReplicaCount, Math.max(hpaMinReplicas(config), raw));
}
