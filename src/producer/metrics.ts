/**
 * The producer's Prometheus metrics. Kept here until every metric moves into
 * one observability module; names and labels are the contract dashboards and
 * alerts are written against, so keep them when moving.
 *
 * Every label has a closed set of values: a route label is the route pattern
 * (never the raw URL, which carries trade ids), unmatched requests share one
 * value, and statuses are collapsed into classes.
 */
import { Counter, Histogram, type Registry } from 'prom-client';

/** What happened to one trade offered to the producer. */
export const TRADE_OUTCOMES = [
  /** Newly enqueued (seq assigned). */
  'queued',
  /** Same tradeId, same payload as an earlier accepted trade. */
  'duplicate',
  /** Same tradeId, different payload. */
  'conflict',
  /** Failed validation. */
  'invalid',
  /** Refused by backpressure (MAX_BACKLOG). */
  'backlog_full',
  /** Redis unavailable: the outcome is unknown to the producer; the client retries. */
  'unavailable',
] as const;
export type TradeOutcome = (typeof TRADE_OUTCOMES)[number];

/** Label value of requests that matched no route. */
export const UNMATCHED_ROUTE = 'unmatched';

export interface ProducerMetrics {
  /** `tradefleet_producer_trades_total{outcome}` */
  readonly trades: Counter<'outcome'>;
  /** `tradefleet_producer_http_request_duration_seconds{method,route,status_class}` */
  readonly requestDuration: Histogram<'method' | 'route' | 'status_class'>;
}

const METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']);

/** Registers the producer metrics on `registry`; call once per registry. */
export function createProducerMetrics(registry: Registry): ProducerMetrics {
  const trades = new Counter({
    name: 'tradefleet_producer_trades_total',
    help: 'Trades offered to the producer, by outcome (queued, duplicate, conflict, invalid, backlog_full, unavailable).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  // Start every series at 0 so that rate() and absent-based alerts work from the first scrape.
  for (const outcome of TRADE_OUTCOMES) trades.inc({ outcome }, 0);

  const requestDuration = new Histogram({
    name: 'tradefleet_producer_http_request_duration_seconds',
    help: 'Duration of producer HTTP requests, by method, route pattern and status class.',
    labelNames: ['method', 'route', 'status_class'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  return { trades, requestDuration };
}

/** `2xx`, `4xx`, ...: a bounded label for an HTTP status. */
export function statusClass(status: number): string {
  return status >= 100 && status < 600 ? `${Math.floor(status / 100)}xx` : 'other';
}

/** The method as a bounded label value. */
export function methodLabel(method: string): string {
  return METHODS.has(method) ? method : 'other';
}
