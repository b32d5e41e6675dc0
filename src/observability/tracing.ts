/**
 * OpenTelemetry trace context from the producer's request, through the queue,
 * to the worker's PostgreSQL transaction (TRACING_ENABLED, off by default).
 *
 * Only @opentelemetry/api is used here: spans go to whatever tracer provider
 * the process registered (an OpenTelemetry SDK started with the process, e.g.
 * through NODE_OPTIONS=--require <sdk setup>); without one they are no-ops,
 * and an incoming `traceparent` is still carried through the queue.
 *
 * - Producer: one `tradefleet enqueue` span (kind PRODUCER) per request, child
 *   of the request's context (the active one, or its `traceparent` header).
 *   Its context is stored with each trade in the queue entry (codec.ts), not
 *   in the trade's payload, so payload hashes and duplicate checks are unchanged.
 * - Worker: one `tradefleet apply` span (kind CONSUMER) per batch: child of
 *   the first traced trade's producer span, with a link to every traced trade
 *   of the batch (a batch mixes trades of many requests).
 */
import {
  context,
  isSpanContextValid,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type SpanContext,
  type Tracer,
} from '@opentelemetry/api';

import { TRACEPARENT_PATTERN, type QueuedItem } from '../queue/codec';

export const TRACER_NAME = 'tradefleet';

/** Spans are created only when enabled; disabled, every helper is a no-op that stores nothing. */
export interface Tracing {
  readonly enabled: boolean;
  readonly tracer: Tracer;
}

export function createTracing(enabled: boolean): Tracing {
  return { enabled, tracer: trace.getTracer(TRACER_NAME) };
}

export const TRACING_OFF: Tracing = createTracing(false);

/** The span context of a W3C `traceparent` value (version 00), or undefined when malformed or invalid. */
export function parseTraceparent(value: string | undefined): SpanContext | undefined {
  if (value === undefined) return undefined;
  const v = value.trim().toLowerCase();
  if (!TRACEPARENT_PATTERN.test(v)) return undefined;
  const [, traceId, spanId, flags] = v.split('-') as [string, string, string, string];
  const sc: SpanContext = { traceId, spanId, traceFlags: parseInt(flags, 16), isRemote: true };
  return isSpanContextValid(sc) ? sc : undefined;
}

/** `00-<traceId>-<spanId>-<flags>`, or undefined for an invalid span context. */
export function formatTraceparent(sc: SpanContext | undefined): string | undefined {
  if (!sc || !isSpanContextValid(sc)) return undefined;
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

/** A span being recorded (or a no-op), with what to hand on. */
export interface ActiveSpan {
  /** The context to run the traced work in (instrumented clients nest their spans under it). */
  readonly context: Context;
  /** The traceparent to store with each trade; undefined when there is no valid trace context. */
  readonly traceparent: string | undefined;
  /** Runs `fn` with this span active. */
  run<T>(fn: () => T): T;
  end(error?: unknown): void;
}

const NOOP_SPAN: ActiveSpan = {
  context: ROOT_CONTEXT,
  traceparent: undefined,
  run: (fn) => fn(),
  end: () => undefined,
};

function activeSpan(span: Span, ctx: Context): ActiveSpan {
  return {
    context: ctx,
    // A no-op span (no SDK) carries its parent's context, so an incoming trace goes on through the queue.
    traceparent: formatTraceparent(span.spanContext()),
    run: (fn) => context.with(ctx, fn),
    end: (error) => finish(span, error),
  };
}

function finish(span: Span, error?: unknown): void {
  if (error !== undefined) {
    span.recordException(error instanceof Error ? error : String(error));
    span.setStatus({
      code: SpanStatusCode.ERROR,
      message: error instanceof Error ? error.message : String(error),
    });
  }
  span.end();
}

/**
 * The producer's span around one enqueue call. `traceparentHeader` is the
 * request's header, used when no span is active already (an SDK with HTTP
 * instrumentation makes the server span active).
 */
export function startEnqueueSpan(
  tracing: Tracing,
  traceparentHeader: string | string[] | undefined,
  attributes: Attributes,
): ActiveSpan {
  if (!tracing.enabled) return NOOP_SPAN;
  const current = context.active();
  const header = Array.isArray(traceparentHeader) ? traceparentHeader[0] : traceparentHeader;
  const remote = trace.getSpanContext(current) ? undefined : parseTraceparent(header);
  const parent = remote ? trace.setSpanContext(current, remote) : current;
  const span = tracing.tracer.startSpan(
    'tradefleet enqueue',
    {
      kind: SpanKind.PRODUCER,
      attributes: { 'messaging.system': 'tradefleet', 'messaging.operation.type': 'send', ...attributes },
    },
    parent,
  );
  return activeSpan(span, trace.setSpan(parent, span));
}

/** At most this many links per batch span. */
export const MAX_LINKS = 128;

/** The worker's span around one batch (its transaction, retries included). */
export function startApplySpan(
  tracing: Tracing,
  batch: { partitionKey: string; epoch: number; items: readonly QueuedItem[]; attempt: number },
): ActiveSpan {
  if (!tracing.enabled) return NOOP_SPAN;
  const links: Link[] = [];
  const seen = new Set<string>();
  let first: SpanContext | undefined;
  for (const item of batch.items) {
    const sc = parseTraceparent(item.traceparent);
    if (!sc) continue;
    first ??= sc;
    if (seen.has(sc.spanId) || links.length >= MAX_LINKS) continue;
    seen.add(sc.spanId);
    links.push({
      context: sc,
      attributes: { 'tradefleet.trade_id': item.tradeId, 'tradefleet.seq': item.seq },
    });
  }
  const parent = first ? trace.setSpanContext(ROOT_CONTEXT, first) : ROOT_CONTEXT;
  const span = tracing.tracer.startSpan(
    'tradefleet apply',
    {
      kind: SpanKind.CONSUMER,
      links,
      attributes: {
        'messaging.system': 'tradefleet',
        'messaging.operation.type': 'process',
        'messaging.batch.message_count': batch.items.length,
        'tradefleet.partition_key': batch.partitionKey,
        'tradefleet.epoch': batch.epoch,
        'tradefleet.attempt': batch.attempt,
        'tradefleet.first_seq': batch.items[0]?.seq ?? 0,
        'tradefleet.last_seq': batch.items[batch.items.length - 1]?.seq ?? 0,
      },
    },
    parent,
  );
  return activeSpan(span, trace.setSpan(parent, span));
}
