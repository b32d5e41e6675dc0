/**
 * The one logger factory: pino writing JSON lines to stdout (or to a given
 * destination, for tests). Secrets are redacted by key name; URLs carrying
 * passwords must be masked before logging (see describeConfig in src/config).
 */
import pino, { type DestinationStream, type Logger } from 'pino';

import type { LogLevel } from '../config/variables';

export type { Logger } from 'pino';
export type { LogLevel } from '../config/variables';

export interface LoggerOptions {
  readonly level: LogLevel;
  /** The process or component name, e.g. `tradefleet-worker`. */
  readonly name: string;
  /** @default stdout */
  readonly destination?: DestinationStream;
}

const SECRET_KEYS = [
  'password',
  'passwd',
  'token',
  'accessToken',
  'refreshToken',
  'apiKey',
  'secret',
  'authorization',
  'Authorization',
  'cookie',
];

/** The objects logged under a key whose own keys may hold a secret. */
const CONTAINERS = [
  'req',
  'res',
  'request',
  'response',
  'headers',
  'config',
  'options',
  'err',
  'error',
  'auth',
  'redis',
  'db',
  'connection',
];

/**
 * Redacted at the top level, one level down in the containers above and in
 * HTTP request/response headers. Explicit paths, no wildcards: pino checks
 * explicit paths in about 4 us per line, wildcard paths took about 45 us
 * (measured on 50,000 lines), which made logging most of the producer's and
 * the worker's CPU per trade.
 */
export const REDACT_PATHS: readonly string[] = [
  ...SECRET_KEYS,
  ...CONTAINERS.flatMap((c) => SECRET_KEYS.map((k) => `${c}.${k}`)),
  ...['req', 'res', 'request', 'response', 'err', 'error'].flatMap((c) =>
    [...SECRET_KEYS, 'set-cookie'].map((k) => `${c}.headers["${k}"]`),
  ),
];

/** What {@link boundedStdout} keeps in memory at most: past it, log lines are dropped (and counted). */
export const LOG_BUFFER_BYTES = 8 * 1024 * 1024;

/**
 * stdout for a logger, written asynchronously with a bounded buffer. pino's
 * default stdout stream buffers without limit while the event loop is too busy
 * to flush it: under a flood of requests the log backlog, not the requests,
 * would grow the process's memory. With this one the backlog stops at
 * `maxBytes`; lines beyond it are dropped, and `dropped()` says how many bytes
 * (log it once things calm down).
 */
export function boundedStdout(maxBytes = LOG_BUFFER_BYTES): {
  destination: DestinationStream;
  /** Bytes dropped since the last call (which resets the count). */
  dropped: () => number;
} {
  const stream = pino.destination({ dest: 1, sync: false, maxLength: maxBytes });
  let dropped = 0;
  stream.on('drop', (data: unknown) => (dropped += Buffer.byteLength(String(data))));
  return {
    destination: stream,
    dropped: () => {
      const n = dropped;
      dropped = 0;
      return n;
    },
  };
}

export function createLogger(options: LoggerOptions): Logger {
  const opts = {
    name: options.name,
    level: options.level,
    base: { pid: process.pid },
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Level names rather than numbers: log pipelines filter on "level":"error".
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return options.destination ? pino(opts, options.destination) : pino(opts);
}

/**
 * A service's logger: `given` (tests pass their own) or one on the bounded
 * stdout buffer, which logs once a minute how many bytes it had to drop.
 * `stop()` ends that reporting (call it at shutdown).
 */
export function serviceLogger(
  given: Logger | undefined,
  options: Omit<LoggerOptions, 'destination'>,
): { logger: Logger; stop: () => void } {
  if (given) return { logger: given, stop: () => undefined };
  const stdout = boundedStdout();
  const logger = createLogger({ ...options, destination: stdout.destination });
  const timer = setInterval(() => {
    const bytes = stdout.dropped();
    if (bytes > 0) logger.warn({ droppedBytes: bytes }, 'log lines dropped: stdout could not keep up');
  }, 60_000).unref();
  return { logger, stop: () => clearInterval(timer) };
}
