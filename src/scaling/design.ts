/**
 * DESIGN.md section 4 as numbers: replicas = ceil(min(P / C, B / T)), where P
 * is the number of pending partitions, B the backlog, C the worker concurrency
 * and T the backlog one worker is expected to carry.
 *
 * KEDA turns the formula's value into a Quantity truncated to thousandths, and
 * the HPA then computes ceil(value / target). Writing the formula as
 * `min(P / C, B / T)` with target 1 would be exact in arithmetic but not in
 * KEDA: one trade in one partition with T = 2000 gives 0.0005, which truncates
 * to 0, so the ScaledObject would read as idle while a trade waits. tradefleet
 * therefore scales both sides by C*T:
 *
 *     formula = min(P * T, B * C),  target = C * T
 *
 * which has the same ceil(value / target), is an integer (>= min(T, C) >= 1)
 * whenever there is work, and is exactly 0 when there is none.
 */

/** The trigger names the formula reads; the ScaledObject's triggers carry them. */
export const TRIGGER_NAMES = Object.freeze({ pending: 'pending', backlog: 'backlog' });

export interface ScalingDesign {
  /** C: partitions one worker drains at once (WORKER_CONCURRENCY). */
  readonly concurrency: number;
  /** T: unapplied trades one worker is expected to carry. */
  readonly backlogPerWorker: number;
}

export interface ScalingModifiersSpec {
  readonly formula: string;
  readonly target: string;
  readonly activationTarget: string;
  readonly metricType: 'AverageValue';
}

function positiveInt(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 1) {
    throw new RangeError(`${name} must be a positive integer, got ${v}. Fix: set it to 1 or more.`);
  }
}

/** The ScaledObject's `advanced.scalingModifiers` for the design's numbers. */
export function scalingModifiersFor(design: ScalingDesign): ScalingModifiersSpec {
  positiveInt('concurrency (C)', design.concurrency);
  positiveInt('backlogPerWorker (T)', design.backlogPerWorker);
  const { pending, backlog } = TRIGGER_NAMES;
  return {
    formula: `min(${pending} * ${design.backlogPerWorker}, ${backlog} * ${design.concurrency})`,
    // KEDA's fallback requires an integer target (strconv.ParseInt in pkg/fallback).
    target: String(design.concurrency * design.backlogPerWorker),
    activationTarget: '0',
    // Explicit: KEDA's fallback is only enabled for an AverageValue composite metric.
    metricType: 'AverageValue',
  };
}

/** The design's replica count without any HPA state: ceil(min(P / C, B / T)), clamped. */
export function designReplicas(
  design: ScalingDesign,
  signals: { readonly pendingPartitions: number; readonly backlog: number },
  bounds: { readonly min: number; readonly max: number },
): number {
  const raw = Math.ceil(
    Math.min(signals.pendingPartitions / design.concurrency, signals.backlog / design.backlogPerWorker),
  );
  return Math.min(bounds.max, Math.max(bounds.min, raw));
}
