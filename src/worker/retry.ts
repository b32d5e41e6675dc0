/**
 * Which failures are worth retrying in place, and the retry loop itself.
 *
 * A transient failure (connection lost, deadlock, serialization failure,
 * server shutting down, too many connections) is retried here, with capped
 * exponential backoff, while the worker holds the partition's lease: the
 * partition waits, others go on (the consumer's heartbeat keeps extending the
 * lease). Anything else from the database is unexpected: it goes to the
 * consumer, which keeps the head in place, releases the lease and makes the
 * partition claimable again, by any worker, after its own capped backoff.
 */
import { cappedBackoff } from '../queue/consumer';

/** Node socket errors meaning "the server is not (or no longer) reachable". */
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENOTCONN',
]);

/**
 * SQLSTATEs of a lost or refused PostgreSQL connection: 57P01 admin_shutdown,
 * 57P02 crash_shutdown, 57P03 cannot_connect_now (starting up or in recovery),
 * 53300 too_many_connections; class 08 (connection exception) is matched by prefix.
 */
const PG_CONNECTION_CODES = new Set(['57P01', '57P02', '57P03', '53300']);

/** 40001 serialization_failure, 40P01 deadlock_detected: the same statement may well succeed next time. */
const PG_CONTENTION_CODES = new Set(['40001', '40P01']);

/**
 * pg's own errors carry no code: a socket closed under a query, a pool that
 * could not connect in time, a client reused after a connection error.
 * ioredis: a command on a closed connection, retries per request exhausted.
 */
const CONNECTION_MESSAGES = [
  /^Connection terminated/i,
  /timeout exceeded when trying to connect/i,
  /Client has encountered a connection error and is not queryable/i,
  /Client was closed and is not queryable/i,
  /^Connection is closed\.?$/i,
  /Reached the max retries per request limit/i,
  /Stream isn't writeable/i,
];

/** Redis replies that mean "not now" (loading after a restart, failover in progress). */
const REDIS_TRANSIENT_REPLY = /^(LOADING|READONLY|CLUSTERDOWN|TRYAGAIN|MASTERDOWN|BUSY)\b/;

function causes(err: unknown): unknown[] {
  // An error, its `cause` chain and the members of an AggregateError (Node's
  // connect tries IPv4 and IPv6 and may report both).
  const out: unknown[] = [];
  const stack = [err];
  while (stack.length > 0 && out.length < 20) {
    const e = stack.pop();
    if (e === null || e === undefined || out.includes(e)) continue;
    out.push(e);
    if (typeof e === 'object') {
      const o = e as { cause?: unknown; errors?: unknown };
      if (o.cause !== undefined) stack.push(o.cause);
      if (Array.isArray(o.errors)) stack.push(...o.errors);
    }
  }
  return out;
}

function codeOf(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function messageOf(e: unknown): string {
  const message = (e as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message : '';
}

/**
 * True when the database (or Redis) could not be reached or dropped the
 * connection: what the circuit breaker counts. Deadlocks and serialization
 * failures are contention, not unreachability, and are not included.
 */
export function isConnectionError(err: unknown): boolean {
  return causes(err).some((e) => {
    const code = codeOf(e);
    if (code !== undefined) {
      if (SOCKET_CODES.has(code) || PG_CONNECTION_CODES.has(code)) return true;
      if (/^08[0-9A-Z]{3}$/.test(code)) return true;
    }
    const name = (e as { name?: unknown } | null)?.name;
    if (name === 'MaxRetriesPerRequestError') return true;
    const message = messageOf(e);
    return CONNECTION_MESSAGES.some((re) => re.test(message));
  });
}

/**
 * True for failures worth retrying in place: connection errors (PostgreSQL
 * and ioredis), 40001, 40P01, and Redis LOADING/READONLY-style replies.
 * Everything else (constraint violations, syntax errors, FencedError,
 * HaltPartitionError, ...) is false.
 */
export function isTransientError(err: unknown): boolean {
  if (isConnectionError(err)) return true;
  return causes(err).some((e) => {
    const code = codeOf(e);
    if (code !== undefined && PG_CONTENTION_CODES.has(code)) return true;
    return (
      (e as { name?: unknown } | null)?.name === 'ReplyError' && REDIS_TRANSIENT_REPLY.test(messageOf(e))
    );
  });
}

/** Why a failure is retried, as a bounded metric label (see RETRY_CAUSES in src/observability/metrics.ts). */
export type FailureCause = 'connection' | 'deadlock' | 'serialization' | 'redis_busy' | 'other';

/** The cause of a failure for the retry metrics: connection, deadlock, serialization, redis_busy or other. */
export function failureCause(err: unknown): FailureCause {
  if (isConnectionError(err)) return 'connection';
  for (const e of causes(err)) {
    const code = codeOf(e);
    if (code === '40P01') return 'deadlock';
    if (code === '40001') return 'serialization';
    if ((e as { name?: unknown } | null)?.name === 'ReplyError' && REDIS_TRANSIENT_REPLY.test(messageOf(e))) {
      return 'redis_busy';
    }
  }
  return 'other';
}

export interface RetryInfo {
  /** The attempt that failed, from 1. */
  readonly attempt: number;
  /** The wait before the next attempt. */
  readonly delayMs: number;
  readonly error: unknown;
}

export interface RetryOptions {
  /** Tries in all, the first included. @default 5 */
  readonly attempts?: number;
  /** Delay after the first failure; doubles on each further one. @default 100 */
  readonly baseMs?: number;
  /** Cap of the delay. @default 2000 */
  readonly maxMs?: number;
  /** Which errors are retried. @default isTransientError */
  readonly isTransient?: (err: unknown) => boolean;
  /** Called before each wait. */
  readonly onRetry?: (info: RetryInfo) => void;
  /**
   * Checked before each retry: false gives up at once and rethrows (shutting
   * down, or the circuit breaker opened). @default always true
   */
  readonly canRetry?: () => boolean;
  /** Aborting ends a wait early and rethrows the last error. */
  readonly signal?: AbortSignal;
  /** @default Math.random (tests pass a fixed one) */
  readonly random?: () => number;
  /** @default a timer (tests pass a fake one) */
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Runs `fn`, retrying transient failures with capped exponential backoff and
 * ±20% jitter (so that partitions failing together do not retry in lockstep).
 * After the last attempt, or on a non-transient error, rethrows that error.
 *
 * `fn` must be safe to run again after a failure whose outcome is unknown (a
 * connection lost during COMMIT): applyBatch is, through its seq fence.
 */
export async function withRetry<T>(fn: () => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const attempts = Math.max(1, opts.attempts ?? 5);
  const baseMs = opts.baseMs ?? 100;
  const maxMs = opts.maxMs ?? 2000;
  const isTransient = opts.isTransient ?? isTransientError;
  const sleep = opts.sleep ?? defaultSleep;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= attempts || !isTransient(err)) throw err;
      if (opts.signal?.aborted || (opts.canRetry && !opts.canRetry())) throw err;
      const delayMs = cappedBackoff(attempt, baseMs, maxMs, opts.random);
      opts.onRetry?.({ attempt, delayMs, error: err });
      await sleep(delayMs, opts.signal);
      if (opts.signal?.aborted || (opts.canRetry && !opts.canRetry())) throw err;
    }
  }
}
