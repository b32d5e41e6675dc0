/**
 * Scaling on queue length: the signals read from Redis, the replica arithmetic
 * of KEDA and the HPA, tradefleet's formula, and the local autoscaler's step.
 */
export * from './formula';
export * from './hpa';
export * from './keda';
export * from './design';
export * from './signals';
export * from './autoscaler';
export * from './manifest';
