import type { Redis } from 'ioredis';
import { QueueKeys, readSignals } from '../queue';
import {
  desiredReplicas,
  initialAutoscalerState,
  type ScaledObjectModel,
  type ScalingSignals,
} from '../scaling';

export interface LocalAutoscalerOptions {
  redis: Redis;
  namespace: string;
  /** The worker ScaledObject, as synthesized (loadScaledObjectModel). */
  model: ScaledObjectModel;
  /** Start one more worker process. */
  scaleUp(): void;
  /** Drain and stop one worker process (SIGTERM). */
  scaleDown(): void;
  /** Worker processes running or starting now. */
  running(): number;
  log(line: string): void;
  /**
   * Runs KEDA's and the HPA's clocks this many times faster than real time
   * (polling, cooldown, stabilization windows), so that a burst can be watched
   * going out and back in within seconds. @default 1
   */
  speed?: number;
}

/**
 * A stand-in for KEDA on one machine: every pollingInterval it reads the same
 * Redis signals the ScaledObject's triggers read, applies the same replica
 * arithmetic (src/scaling: activation, scalingModifiers, HPA with its
 * tolerance, behavior policies and stabilization windows, cooldown to zero),
 * and starts or drains worker processes to match.
 */
export function startLocalAutoscaler(opts: LocalAutoscalerOptions): { stop(): void } {
  const speed = opts.speed ?? 1;
  const keys = new QueueKeys(opts.namespace);
  const started = Date.now();
  const clock = () => started + (Date.now() - started) * speed;
  let state = initialAutoscalerState(clock(), opts.running());
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const poll = async () => {
    let signals: ScalingSignals | null;
    try {
      const s = await readSignals(opts.redis, keys);
      // The chart names keys of its own namespace; bind its triggers to this one's.
      const keyLengths: Record<string, number> = {};
      for (const t of opts.model.triggers) {
        keyLengths[t.listName] = t.listName.endsWith(':pending')
          ? s.pendingPartitions
          : t.listName.endsWith(':backlog')
            ? s.backlog
            : 0;
      }
      signals = {
        pendingPartitions: s.pendingPartitions,
        backlog: s.backlog,
        oldestAgeMs: s.oldestAgeMs,
        keyLengths,
      };
    } catch {
      signals = null;
    }
    const before = state.replicas;
    const decision = desiredReplicas(signals, opts.model, state, clock());
    state = decision.state;
    if (decision.replicas !== before) {
      opts.log(
        `[autoscale] replicas ${before} -> ${decision.replicas} (${decision.reason}${decision.hpaReason ? `: ${decision.hpaReason}` : ''})` +
          (signals
            ? ` pending=${signals.pendingPartitions} backlog=${signals.backlog}`
            : ' signals unreadable'),
      );
    }
    while (opts.running() < decision.replicas) opts.scaleUp();
    while (opts.running() > decision.replicas) opts.scaleDown();
  };

  const loop = async () => {
    if (stopped) return;
    await poll().catch((e) => opts.log(`[autoscale] poll failed: ${(e as Error).message}`));
    if (!stopped) timer = setTimeout(loop, (opts.model.pollingIntervalSeconds * 1000) / speed);
  };
  void loop();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
