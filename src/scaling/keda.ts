/**
 * What KEDA does with a ScaledObject, as pure functions over a typed model of
 * the ScaledObject's numbers (read from the synthesized manifest by
 * `scaledObjectModel`, so that the local autoscaler and the tests use exactly
 * what `kubectl apply` would send).
 *
 * KEDA's documented semantics (keda.sh "Scaling Deployments", "ScaledObject
 * specification") and code (pkg/scaling, pkg/scalers/redis_scaler.go, v2.20):
 * - 0 -> 1: while the workload has 0 replicas, KEDA itself scales it to
 *   max(minReplicaCount, 1) as soon as the ScaledObject is active. Without
 *   scalingModifiers it is active when any trigger's metric is above its
 *   activation threshold (redis: length > activationListLength, default 0).
 *   With scalingModifiers the triggers' own activation is replaced: it is active
 *   when the formula's value is above `activationTarget` (default 0).
 * - 1..N: the HPA that KEDA creates (minReplicas = max(minReplicaCount, 1),
 *   maxReplicas = maxReplicaCount) scales on the metric; with scalingModifiers on
 *   one "composite-metric" whose value is the formula, target `target`.
 * - N -> 0: when the ScaledObject has been inactive for cooldownPeriod seconds
 *   (default 300) and minReplicaCount is 0, KEDA scales it to 0.
 * - The formula's float result becomes a Quantity through SetMilli(int64(v*1000)):
 *   truncated to thousandths, so a positive value under 0.001 reads as 0
 *   (inactive). tradefleet's formula keeps its values integral to stay clear of it.
 */
import { compileFormula, evaluateFormula, type CompiledFormula } from './formula';
import {
  DEFAULT_SCALE_DOWN,
  DEFAULT_SCALE_UP,
  type HpaBehavior,
  type ScalingPolicy,
  type ScalingRules,
} from './hpa';

export const KEDA_DEFAULTS = Object.freeze({
  pollingIntervalSeconds: 30,
  cooldownPeriodSeconds: 300,
  initialCooldownPeriodSeconds: 0,
  minReplicaCount: 0,
  maxReplicaCount: 100,
  activationTarget: 0,
  redisListLength: 5,
  redisActivationListLength: 0,
});

export interface RedisTriggerModel {
  readonly name: string;
  /** The key KEDA reads; its length by type: ZCARD, SCARD, LLEN, HLEN (0 when absent). */
  readonly listName: string;
  /** Target per replica when used without scalingModifiers. */
  readonly listLength: number;
  /** Active when the length is above this (ignored under scalingModifiers). */
  readonly activationListLength: number;
}

export interface ScalingModifiersModel {
  readonly formula: CompiledFormula;
  readonly target: number;
  readonly activationTarget: number;
  readonly metricType: 'AverageValue' | 'Value';
}

export interface FallbackModel {
  readonly failureThreshold: number;
  readonly replicas: number;
}

export interface ScaledObjectModel {
  readonly name: string;
  readonly scaleTargetName: string;
  readonly pollingIntervalSeconds: number;
  readonly cooldownPeriodSeconds: number;
  readonly initialCooldownPeriodSeconds: number;
  readonly minReplicaCount: number;
  readonly maxReplicaCount: number;
  readonly triggers: readonly RedisTriggerModel[];
  readonly modifiers?: ScalingModifiersModel;
  readonly fallback?: FallbackModel;
  readonly behavior: HpaBehavior;
}

export class ScaledObjectError extends Error {
  override readonly name = 'ScaledObjectError';
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function num(
  path: string,
  raw: unknown,
  dflt: number | undefined,
  opts: { min?: number; integer?: boolean } = {},
): number {
  if (raw === undefined) {
    if (dflt === undefined) throw new ScaledObjectError(`${path} is required`);
    return dflt;
  }
  const v = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new ScaledObjectError(`${path} must be a number, got ${JSON.stringify(raw)}`);
  }
  if (opts.integer && !Number.isInteger(v))
    throw new ScaledObjectError(`${path} must be an integer, got ${JSON.stringify(raw)}`);
  if (opts.min !== undefined && v < opts.min)
    throw new ScaledObjectError(`${path} must be >= ${opts.min}, got ${v}`);
  return v;
}

function rules(path: string, raw: unknown, dflt: ScalingRules): ScalingRules {
  if (raw === undefined) return dflt;
  if (!isObj(raw)) throw new ScaledObjectError(`${path} must be an object`);
  const policiesRaw = raw.policies;
  let policies: readonly ScalingPolicy[] = dflt.policies;
  if (policiesRaw !== undefined) {
    if (!Array.isArray(policiesRaw)) throw new ScaledObjectError(`${path}.policies must be a list`);
    policies = policiesRaw.map((p: unknown, i) => {
      const at = `${path}.policies[${i}]`;
      if (!isObj(p)) throw new ScaledObjectError(`${at} must be an object`);
      if (p.type !== 'Pods' && p.type !== 'Percent')
        throw new ScaledObjectError(`${at}.type must be Pods or Percent, got ${JSON.stringify(p.type)}`);
      return {
        type: p.type,
        value: num(`${at}.value`, p.value, undefined, { min: 1, integer: true }),
        periodSeconds: num(`${at}.periodSeconds`, p.periodSeconds, undefined, { min: 1, integer: true }),
      };
    });
  }
  const sp = raw.selectPolicy ?? 'Max';
  if (sp !== 'Max' && sp !== 'Min' && sp !== 'Disabled') {
    throw new ScaledObjectError(
      `${path}.selectPolicy must be Max, Min or Disabled, got ${JSON.stringify(sp)}`,
    );
  }
  return {
    selectPolicy: sp,
    stabilizationWindowSeconds: num(
      `${path}.stabilizationWindowSeconds`,
      raw.stabilizationWindowSeconds,
      dflt.stabilizationWindowSeconds,
      {
        min: 0,
        integer: true,
      },
    ),
    policies,
  };
}

/**
 * Read a ScaledObject manifest (as parsed from YAML) into the model, checking
 * what KEDA's admission webhook and controller check for the parts we use.
 * Only `redis` triggers are modelled; any other type is rejected.
 *
 * @throws ScaledObjectError or FormulaError naming the field and the fix.
 */
export function scaledObjectModel(manifest: unknown): ScaledObjectModel {
  if (!isObj(manifest) || manifest.kind !== 'ScaledObject' || manifest.apiVersion !== 'keda.sh/v1alpha1') {
    throw new ScaledObjectError('expected a keda.sh/v1alpha1 ScaledObject');
  }
  const meta = isObj(manifest.metadata) ? manifest.metadata : {};
  const spec = manifest.spec;
  if (!isObj(spec)) throw new ScaledObjectError('spec is required');
  const target = isObj(spec.scaleTargetRef) ? spec.scaleTargetRef : undefined;
  if (!target || typeof target.name !== 'string')
    throw new ScaledObjectError('spec.scaleTargetRef.name is required');
  if (!Array.isArray(spec.triggers) || spec.triggers.length === 0)
    throw new ScaledObjectError('spec.triggers needs at least one trigger');

  const triggers: RedisTriggerModel[] = spec.triggers.map((t: unknown, i) => {
    const at = `spec.triggers[${i}]`;
    if (!isObj(t)) throw new ScaledObjectError(`${at} must be an object`);
    if (t.type !== 'redis')
      throw new ScaledObjectError(
        `${at}.type is ${JSON.stringify(t.type)}; only "redis" triggers are modelled`,
      );
    const md = isObj(t.metadata) ? t.metadata : {};
    if (typeof md.listName !== 'string' || md.listName === '')
      throw new ScaledObjectError(`${at}.metadata.listName is required`);
    return {
      name: typeof t.name === 'string' ? t.name : '',
      listName: md.listName,
      listLength: num(`${at}.metadata.listLength`, md.listLength, KEDA_DEFAULTS.redisListLength, {
        integer: true,
        min: 1,
      }),
      activationListLength: num(
        `${at}.metadata.activationListLength`,
        md.activationListLength,
        KEDA_DEFAULTS.redisActivationListLength,
        {
          integer: true,
          min: 0,
        },
      ),
    };
  });

  const advanced = isObj(spec.advanced) ? spec.advanced : {};
  let modifiers: ScalingModifiersModel | undefined;
  const sm = advanced.scalingModifiers;
  if (isObj(sm) && (sm.formula !== undefined || sm.target !== undefined)) {
    if (typeof sm.formula !== 'string' || typeof sm.target !== 'string') {
      throw new ScaledObjectError('spec.advanced.scalingModifiers needs both formula and target (strings)');
    }
    const names = triggers.map((t) => t.name);
    triggers.forEach((t, i) => {
      if (!t.name)
        throw new ScaledObjectError(
          `spec.triggers[${i}].name is required when scalingModifiers.formula is set`,
        );
    });
    if (new Set(names).size !== names.length)
      throw new ScaledObjectError(`trigger names must be unique, got ${names.join(', ')}`);
    const metricType = sm.metricType ?? 'AverageValue';
    if (metricType !== 'AverageValue' && metricType !== 'Value') {
      throw new ScaledObjectError(
        `spec.advanced.scalingModifiers.metricType must be AverageValue or Value, got ${JSON.stringify(metricType)}`,
      );
    }
    const t = num('spec.advanced.scalingModifiers.target', sm.target, undefined);
    if (!(t > 0))
      throw new ScaledObjectError(`spec.advanced.scalingModifiers.target must be > 0, got ${sm.target}`);
    modifiers = {
      formula: compileFormula(sm.formula, names),
      target: t,
      activationTarget: num(
        'spec.advanced.scalingModifiers.activationTarget',
        sm.activationTarget,
        KEDA_DEFAULTS.activationTarget,
      ),
      metricType,
    };
  }

  const hpa = isObj(advanced.horizontalPodAutoscalerConfig) ? advanced.horizontalPodAutoscalerConfig : {};
  const behavior = isObj(hpa.behavior) ? hpa.behavior : {};
  const fb = isObj(spec.fallback) ? spec.fallback : undefined;
  const minReplicaCount = num('spec.minReplicaCount', spec.minReplicaCount, KEDA_DEFAULTS.minReplicaCount, {
    integer: true,
    min: 0,
  });
  const maxReplicaCount = num('spec.maxReplicaCount', spec.maxReplicaCount, KEDA_DEFAULTS.maxReplicaCount, {
    integer: true,
    min: 1,
  });
  if (minReplicaCount > maxReplicaCount) {
    throw new ScaledObjectError(
      `spec.minReplicaCount=${minReplicaCount} must be <= spec.maxReplicaCount=${maxReplicaCount}`,
    );
  }
  return {
    name: typeof meta.name === 'string' ? meta.name : '',
    scaleTargetName: target.name,
    pollingIntervalSeconds: num(
      'spec.pollingInterval',
      spec.pollingInterval,
      KEDA_DEFAULTS.pollingIntervalSeconds,
      { integer: true, min: 1 },
    ),
    cooldownPeriodSeconds: num(
      'spec.cooldownPeriod',
      spec.cooldownPeriod,
      KEDA_DEFAULTS.cooldownPeriodSeconds,
      { integer: true, min: 0 },
    ),
    initialCooldownPeriodSeconds: num(
      'spec.initialCooldownPeriod',
      spec.initialCooldownPeriod,
      KEDA_DEFAULTS.initialCooldownPeriodSeconds,
      {
        integer: true,
        min: 0,
      },
    ),
    minReplicaCount,
    maxReplicaCount,
    triggers,
    modifiers,
    fallback: fb
      ? {
          failureThreshold: num('spec.fallback.failureThreshold', fb.failureThreshold, undefined, {
            integer: true,
            min: 0,
          }),
          replicas: num('spec.fallback.replicas', fb.replicas, undefined, { integer: true, min: 0 }),
        }
      : undefined,
    behavior: {
      scaleUp: rules(
        'spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleUp',
        behavior.scaleUp,
        DEFAULT_SCALE_UP,
      ),
      scaleDown: rules(
        'spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown',
        behavior.scaleDown,
        DEFAULT_SCALE_DOWN,
      ),
    },
  };
}

/** KEDA's float -> Quantity conversion of the formula result: SetMilli(int64(v * 1000)), i.e. truncated to thousandths. */
export function toMilliQuantity(value: number): number {
  return Math.trunc(value * 1000) / 1000;
}

/** The HPA's minReplicas for a ScaledObject: KEDA never lets the HPA itself go below 1. */
export function hpaMinReplicas(model: ScaledObjectModel): number {
  return Math.max(model.minReplicaCount, 1);
}

export interface MetricsEvaluation {
  /** Trigger name -> metric value (the key's length). */
  readonly triggers: Readonly<Record<string, number>>;
  /** The composite metric, after KEDA's milli truncation (only with scalingModifiers). */
  readonly composite?: number;
  /** The value the HPA compares with its target, and that target. */
  readonly hpaMetric: number;
  readonly hpaTarget: number;
  readonly active: boolean;
}

/**
 * Evaluate the ScaledObject's metrics and activity from the trigger values.
 * Without scalingModifiers and with several triggers, the HPA takes the highest
 * of the per-trigger replica counts; this returns the trigger giving that count.
 */
export function evaluateMetrics(
  model: ScaledObjectModel,
  triggerValues: Readonly<Record<string, number>>,
): MetricsEvaluation {
  for (const t of model.triggers) {
    if (triggerValues[t.name] === undefined)
      throw new ScaledObjectError(`no value for trigger "${t.name}" (${t.listName})`);
  }
  if (model.modifiers) {
    const raw = evaluateFormula(model.modifiers.formula, triggerValues);
    if (!Number.isFinite(raw)) {
      throw new ScaledObjectError(
        `scalingModifiers.formula ${JSON.stringify(model.modifiers.formula.source)} gave ${raw}`,
      );
    }
    const composite = toMilliQuantity(raw);
    return {
      triggers: triggerValues,
      composite,
      hpaMetric: composite,
      hpaTarget: model.modifiers.target,
      active: composite > model.modifiers.activationTarget,
    };
  }
  let best = { metric: 0, target: model.triggers[0]!.listLength, replicas: -1 };
  let active = false;
  for (const t of model.triggers) {
    const v = triggerValues[t.name]!;
    if (v > t.activationListLength) active = true;
    const replicas = Math.ceil(v / t.listLength);
    if (replicas > best.replicas) best = { metric: v, target: t.listLength, replicas };
  }
  return { triggers: triggerValues, hpaMetric: best.metric, hpaTarget: best.target, active };
}
