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

/** Redacted at the top level, one level down and in HTTP request/response headers. */
export const REDACT_PATHS: readonly string[] = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((k) => `*.${k}`),
  ...SECRET_KEYS.map((k) => `*.headers.${k}`),
  ...SECRET_KEYS.map((k) => `*.*.headers.${k}`),
];

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
