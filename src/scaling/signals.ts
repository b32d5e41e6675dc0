import type { Redis } from 'ioredis';
import type { QueueKeys } from '../queue/keys';
import { readSignals, type QueueSignals } from '../queue/signals';
import type { ScaledObjectModel } from './keda';

/** The numbers the autoscaler scales on, with the key lengths KEDA's redis triggers read. */
export interface ScalingSignals {
  /** ZCARD of the pending-partitions sorted set. */
  readonly pendingPartitions: number;
  /** HLEN of the backlog hash. */
  readonly backlog: number;
  /** Age of the oldest waiting trade (ms); informational, KEDA does not scale on it. */
  readonly oldestAgeMs: number;
  /**
   * Key name -> length, as KEDA's redis scaler measures a key (ZCARD, SCARD,
   * LLEN or HLEN by type). A trigger whose listName is not here reads a key
   * tradefleet does not maintain (e.g. another namespace).
   */
  readonly keyLengths: Readonly<Record<string, number>>;
}

export function scalingSignalsFrom(
  keys: QueueKeys,
  s: Pick<QueueSignals, 'pendingPartitions' | 'backlog'> & Partial<Pick<QueueSignals, 'oldestAgeMs'>>,
): ScalingSignals {
  return {
    pendingPartitions: s.pendingPartitions,
    backlog: s.backlog,
    oldestAgeMs: s.oldestAgeMs ?? 0,
    keyLengths: { [keys.pending]: s.pendingPartitions, [keys.backlog]: s.backlog },
  };
}

/** One consistent read (a MULTI) of the scaling signals. */
export async function readScalingSignals(redis: Redis, keys: QueueKeys): Promise<ScalingSignals> {
  return scalingSignalsFrom(keys, await readSignals(redis, keys));
}

/**
 * The value each trigger of the ScaledObject would read from these signals.
 * @throws Error when a trigger reads a key that is not one of tradefleet's signals.
 */
export function triggerValues(model: ScaledObjectModel, signals: ScalingSignals): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of model.triggers) {
    const v = signals.keyLengths[t.listName];
    if (v === undefined) {
      throw new Error(
        `ScaledObject ${model.name} trigger "${t.name}" reads key ${JSON.stringify(t.listName)}, which is not a tradefleet scaling signal ` +
          `(known: ${Object.keys(signals.keyLengths).join(', ')}). Fix: synthesize the ScaledObject with the same TRADEFLEET_NAMESPACE as the workers.`,
      );
    }
    out[t.name] = v;
  }
  return out;
}
