/**
 * Stops a worker from taking work while PostgreSQL is unreachable.
 *
 * Without it, every partition claimed during an outage burns its in-place
 * retries and is released with a longer backoff, for every partition, over
 * and over. With it: after `threshold` consecutive connection failures the
 * breaker opens (the worker stops claiming partitions; those in hand finish or
 * fail and are released), probes the database with backoff, and closes again
 * by itself on the first successful probe.
 *
 *   closed --threshold failures--> open --timer--> half-open --probe ok--> closed
 *                                   ^                  |
 *                                   +---probe failed---+
 *
 * A pure state machine: time and the probe are injected, so tests drive it
 * with a fake clock.
 */

export type BreakerState = 'closed' | 'open' | 'half-open';

/** The timer functions the breaker uses; the real ones by default. */
export interface BreakerClock {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realClock: BreakerClock = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    // Probing must not keep a process alive that is otherwise done.
    t.unref();
    return t;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface CircuitBreakerOptions {
  /** Resolves when the database answers (e.g. `select 1`); rejects otherwise. */
  readonly probe: () => Promise<unknown>;
  /** Which failures count towards opening. @default every failure */
  readonly isFailure?: (err: unknown) => boolean;
  /** Consecutive counted failures that open the breaker. @default 5 */
  readonly threshold?: number;
  /** Wait before the first probe; doubles after each failed probe. @default 1000 */
  readonly probeBaseMs?: number;
  /** Cap of the wait between probes. @default 10000 */
  readonly probeMaxMs?: number;
  /** Called on every transition (e.g. pause the worker on 'open', resume it on 'closed'). */
  readonly onStateChange?: (
    state: BreakerState,
    previous: BreakerState,
    info: { error?: unknown },
  ) => void | Promise<void>;
  /** Receives errors thrown by onStateChange. */
  readonly onError?: (err: unknown) => void;
  /** @default real timers, unref'd */
  readonly clock?: BreakerClock;
}

export class CircuitBreaker {
  private current: BreakerState = 'closed';
  private failures = 0;
  private probes = 0;
  private timer: unknown;
  /** Bumped on every transition, so a probe that resolves late cannot act on a newer state. */
  private generation = 0;
  private closed = false;
  private readonly threshold: number;
  private readonly probeBaseMs: number;
  private readonly probeMaxMs: number;
  private readonly clock: BreakerClock;

  constructor(private readonly opts: CircuitBreakerOptions) {
    this.threshold = Math.max(1, opts.threshold ?? 5);
    this.probeBaseMs = opts.probeBaseMs ?? 1000;
    this.probeMaxMs = opts.probeMaxMs ?? 10_000;
    this.clock = opts.clock ?? realClock;
  }

  get state(): BreakerState {
    return this.current;
  }

  /** Counted failures in a row since the last success. */
  get consecutiveFailures(): number {
    return this.failures;
  }

  /** Failed probes since the breaker opened. */
  get failedProbes(): number {
    return this.probes;
  }

  /**
   * An operation reached the database. While open, that is as good as a
   * successful probe: close at once.
   */
  recordSuccess(): void {
    if (this.closed) return;
    this.failures = 0;
    if (this.current !== 'closed') this.transition('closed', {});
  }

  /** An operation failed; only failures that `isFailure` accepts count. */
  recordFailure(err: unknown): void {
    if (this.closed) return;
    if (this.opts.isFailure && !this.opts.isFailure(err)) return;
    this.failures++;
    if (this.current === 'closed' && this.failures >= this.threshold) {
      this.probes = 0;
      this.transition('open', { error: err });
      this.scheduleProbe();
    }
  }

  /** Stops probing for good (shutdown); the state stays as it is. */
  close(): void {
    this.closed = true;
    this.generation++;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The wait before the next probe: base * 2^(failed probes), capped. */
  nextProbeDelayMs(): number {
    return Math.min(this.probeMaxMs, this.probeBaseMs * 2 ** Math.min(this.probes, 30));
  }

  private transition(state: BreakerState, info: { error?: unknown }): void {
    const previous = this.current;
    if (previous === state) return;
    this.current = state;
    this.generation++;
    if (state === 'closed' && this.timer !== undefined) {
      this.clock.clearTimeout(this.timer);
      this.timer = undefined;
    }
    try {
      const r = this.opts.onStateChange?.(state, previous, info);
      if (r && typeof (r as Promise<void>).catch === 'function')
        (r as Promise<void>).catch((e) => this.opts.onError?.(e));
    } catch (e) {
      this.opts.onError?.(e);
    }
  }

  private scheduleProbe(): void {
    const generation = this.generation;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      if (this.closed || generation !== this.generation || this.current !== 'open') return;
      void this.runProbe();
    }, this.nextProbeDelayMs());
  }

  private async runProbe(): Promise<void> {
    this.transition('half-open', {});
    const generation = this.generation;
    let error: unknown;
    let ok = false;
    try {
      await this.opts.probe();
      ok = true;
    } catch (e) {
      error = e;
    }
    // Closed meanwhile (shutdown, or a success recorded by a batch in hand).
    if (this.closed || generation !== this.generation) return;
    if (ok) {
      this.failures = 0;
      this.transition('closed', {});
      return;
    }
    this.probes++;
    this.transition('open', { error });
    this.scheduleProbe();
  }
}
