/**
 * The producer HTTP API: build it with buildProducerApp (tests, embedding) or
 * run the process with runProducer (main.ts).
 */
export { buildProducerApp, withHeaders } from './app';
export type { ProducerDeps, RouteContext } from './context';
export * from './errors';
export {
  createProducerMetrics,
  TRADE_OUTCOMES,
  type ProducerMetrics,
  type TradeOutcome,
} from '../observability/metrics';
export { AUTH_REALM, TokenVerifier, tokenId, type AuthResult } from './auth';
export { RateLimiter, type Admission, type RateLimiterOptions } from './rate-limit';
export type { BatchItemResult, BatchResponse, TradeAccepted, TradeDuplicate } from './trades';
export type {
  AppliedTradeView,
  DeadLetteredTradeView,
  PositionView,
  QueuedTradeView,
  TradeView,
} from './queries';
export type { ReadyResponse } from './health';
export { producerRedisOptions, runProducer, type ProducerHandle, type RunProducerOptions } from './main';
