/**
 * What the producer's route modules share: the injected dependencies, the
 * metrics, the deadlines, and small helpers for request checks.
 */
import type { FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import type { Registry } from 'prom-client';

import type { ProducerConfig, RateLimitConfig } from '../config';
import type { Database } from '../db/types';
import type { Logger } from '../observability/logger';
import type { DashboardAccess } from '../dashboard';
import type { Tracing } from '../observability/tracing';
import type { PartitionQueue } from '../queue/partition-queue';
import { ApiError, type ErrorDetail } from './errors';
import type { ProducerMetrics } from '../observability/metrics';

/** Everything the producer API needs; main.ts builds it, tests build their own. */
export interface ProducerDeps {
  readonly queue: PartitionQueue;
  /** The commands connection the queue uses: lookups and readiness. */
  readonly redis: Redis;
  readonly db: Kysely<Database>;
  /** Uses batchMaxTrades and bodyLimitBytes. */
  readonly config: Pick<ProducerConfig, 'batchMaxTrades' | 'bodyLimitBytes'>;
  readonly logger: Logger;
  /** Where the producer metrics are registered and what /metrics serves. @default a new Registry */
  readonly metricsRegistry?: Registry;
  /**
   * Accepted bearer tokens. Empty or absent: authentication is off. Every route
   * but /healthz and /readyz requires one of them when set.
   */
  readonly authTokens?: readonly string[];
  /**
   * Per-client token bucket, in trades per second (see rate-limit.ts); absent
   * or perSecond 0: off. maxClients caps the buckets kept. @default off
   */
  readonly rateLimit?: RateLimitConfig & { readonly maxClients?: number };
  /**
   * Requests worked on at once; past it, /v1 requests answer 503 overloaded
   * before their body is read. 0 or absent: no cap. @default no cap
   */
  readonly maxInflightRequests?: number;
  /** The dashboard at /dashboard (its credentials and operator tools); absent: no dashboard. */
  readonly dashboard?: DashboardAccess;
  /** Spans and trace context through the queue. @default off */
  readonly tracing?: Tracing;
  /** Deadline of each Redis call of a request (on top of the client's own commandTimeout). @default 3000 */
  readonly redisTimeoutMs?: number;
  /** Deadline of each PostgreSQL call of a request. @default 5000 */
  readonly dbTimeoutMs?: number;
  /** Deadline of each readiness probe. @default 1000 */
  readonly readinessTimeoutMs?: number;
}

/** What the route modules share. */
export interface RouteContext {
  readonly deps: ProducerDeps;
  readonly metrics: ProducerMetrics;
  readonly tracing: Tracing;
  readonly registry: Registry;
  readonly redisTimeoutMs: number;
  readonly dbTimeoutMs: number;
  readonly readinessTimeoutMs: number;
  /** Counts a request's trades against its client's rate limit, once the number is known. */
  readonly chargeTrades: (request: FastifyRequest, trades: number) => void;
}

/** A one-item `details` list. */
export const fieldDetail = (path: string, code: string, message: string): ErrorDetail[] => [
  { path, code, message },
];

/** 415 naming the Content-Type header and the fix. */
export function unsupportedMediaType(received: string | undefined): ApiError {
  const got =
    received === undefined
      ? 'no Content-Type header'
      : `Content-Type ${JSON.stringify(received.slice(0, 80))}`;
  return new ApiError(
    'unsupported_media_type',
    `the body must be JSON sent with "Content-Type: application/json"; got ${got}`,
    fieldDetail(
      'content-type',
      'enum',
      'set the Content-Type header to "application/json" (charset utf-8 if any)',
    ),
  );
}

/** Throws a 415 unless the request declares a JSON body; for POST routes whose body may be empty. */
export function requireJsonContentType(contentType: string | undefined): void {
  if (contentType === undefined) throw unsupportedMediaType(undefined);
}
