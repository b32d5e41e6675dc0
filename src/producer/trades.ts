/**
 * POST /v1/trades and POST /v1/trades/batch: validate, then enqueue in ONE
 * PartitionQueue.enqueue call, so a request's trades are accepted together
 * or, under backpressure, not at all.
 *
 * Log lines about a trade carry tradeId, partitionKey and seq (when known);
 * bodies and field values are never logged, only field paths and codes.
 */
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify';

import {
  canonicalTradeJson,
  partitionKey,
  payloadHash,
  TRADE_ID_PATTERN,
  validateTrade,
  type FieldError,
  type Trade,
} from '../domain';
import { BacklogFullError, type EnqueueItem, type EnqueueResult } from '../queue/partition-queue';
import { startEnqueueSpan } from '../observability/tracing';
import { locateTrade } from '../queue/signals';
import { requireJsonContentType, type RouteContext } from './context';
import {
  ApiError,
  describeError,
  errorBody,
  isRedisUnavailable,
  redisCall,
  withTimeout,
  type ErrorBody,
  type ErrorDetail,
} from './errors';
import type { TradeOutcome } from '../observability/metrics';

/** 202 body of POST /v1/trades. */
export interface TradeAccepted {
  tradeId: string;
  partitionKey: string;
  seq: number;
  status: 'queued';
}

/**
 * 200 body of POST /v1/trades for a repeat of an accepted trade (same id,
 * same payload). `seq` is the first one; `status` is `queued` while the trade
 * waits in Redis and `processed` once a worker applied or dead-lettered it
 * (GET /v1/trades/:tradeId tells which).
 */
export interface TradeDuplicate {
  tradeId: string;
  partitionKey: string;
  seq: number;
  status: 'queued' | 'processed';
  duplicate: true;
}

/** One item of the batch response, in request order. */
export interface BatchItemResult {
  index: number;
  /** Absent only when the item carries no well-formed tradeId. */
  tradeId?: string;
  status: 'queued' | 'duplicate' | 'conflict' | 'invalid';
  /** `queued`: the assigned seq; `duplicate`: the first seq. */
  seq?: number;
  /** Present for every item that passed validation. */
  partitionKey?: string;
  /** `invalid` (validation_failed) and `conflict` only. */
  error?: ErrorBody['error'];
}

/** Body of POST /v1/trades/batch: 202 when every item was queued, else 200. */
export interface BatchResponse {
  results: BatchItemResult[];
  summary: { total: number; queued: number; duplicate: number; conflict: number; invalid: number };
}

const BATCH_FIELDS = ['trades'] as const;

function toItem(trade: Trade): EnqueueItem {
  return {
    partitionKey: partitionKey(trade.accountId, trade.bookId, trade.securityId),
    tradeId: trade.tradeId,
    payloadHash: payloadHash(trade),
    body: canonicalTradeJson(trade),
  };
}

/** "3 problems: quantity (decimal), currency (enum), foo (unknown_field)" */
function summarize(errors: readonly { path: string; code: string }[]): string {
  const list = errors.map((e) => `${e.path || '(body)'} (${e.code})`).join(', ');
  return `${errors.length} problem${errors.length === 1 ? '' : 's'}: ${list}`;
}

/** The tradeId of an invalid payload, only when it is well-formed (never echo junk into logs). */
function wellFormedTradeId(input: unknown): string | undefined {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) return undefined;
  const id = (input as Record<string, unknown>).tradeId;
  return typeof id === 'string' && TRADE_ID_PATTERN.test(id) ? id : undefined;
}

function conflictDetail(tradeId: string, firstSeq: number): ErrorDetail {
  return {
    path: 'tradeId',
    code: 'conflict',
    message:
      `tradeId ${JSON.stringify(tradeId)} was already accepted (seq ${firstSeq}) with a different payload; ` +
      'resend the original payload unchanged, or use a new tradeId',
  };
}

function conflictError(tradeId: string, firstSeq: number): ApiError {
  const detail = conflictDetail(tradeId, firstSeq);
  return new ApiError('conflict', detail.message, [detail]);
}

function logRejected(
  log: FastifyBaseLogger,
  input: unknown,
  errors: readonly FieldError[],
  index?: number,
): void {
  log.info(
    {
      tradeId: wellFormedTradeId(input),
      ...(index === undefined ? {} : { index }),
      outcome: 'invalid',
      problems: errors.map((e) => ({ path: e.path, code: e.code })),
    },
    'trade rejected',
  );
}

/**
 * Enqueues in one atomic call, mapping backpressure to 429 and an unreachable
 * Redis to 503. Counts refused trades in the outcome metric.
 */
async function enqueueAll(
  ctx: RouteContext,
  request: FastifyRequest,
  items: EnqueueItem[],
): Promise<EnqueueResult[]> {
  const log = request.log;
  const refuse = (outcome: TradeOutcome) => ctx.metrics.trades.inc({ outcome }, items.length);
  const span = startEnqueueSpan(ctx.tracing, request.headers.traceparent, {
    'messaging.batch.message_count': items.length,
  });
  // The trace context travels in the queue entry beside the body, never inside it.
  const traced = span.traceparent ? items.map((i) => ({ ...i, traceparent: span.traceparent })) : items;
  try {
    const results = await span.run(() =>
      withTimeout(ctx.deps.queue.enqueue(traced), ctx.redisTimeoutMs, 'Redis (enqueue)'),
    );
    span.end();
    return results;
  } catch (err) {
    span.end(err);
    if (err instanceof BacklogFullError) {
      refuse('backlog_full');
      log.warn(
        { backlog: err.backlog, limit: err.limit, trades: items.length },
        'enqueue refused: backlog full',
      );
      throw new ApiError(
        'backlog_full',
        `the queue holds ${err.backlog} unapplied trades and accepting ${items.length} more would pass MAX_BACKLOG=${err.limit}; ` +
          'nothing was enqueued; retry later',
        [
          {
            path: '',
            code: 'backlog_full',
            message: `backlog ${err.backlog} + ${items.length} > ${err.limit}`,
          },
        ],
        { cause: err },
      );
    }
    if (isRedisUnavailable(err)) {
      refuse('unavailable');
      throw new ApiError(
        'redis_unavailable',
        `Redis is unavailable (${describeError(err)}); retry the same payload later`,
        undefined,
        { cause: err },
      );
    }
    throw err;
  }
}

/**
 * One line per trade: a queued trade at info for a single POST, at debug for
 * an item of a batch (the batch gets one summary line at info instead: a line
 * per queued trade cost about 22 us of producer CPU each, 40% of the
 * producer's work per trade; bench/profile.ts). Duplicates at info, conflicts
 * at warn, always.
 */
function logOutcome(log: FastifyBaseLogger, item: EnqueueItem, result: EnqueueResult, index?: number): void {
  const fields = {
    tradeId: item.tradeId,
    partitionKey: item.partitionKey,
    seq: result.seq,
    outcome: result.status,
    ...(index === undefined ? {} : { index }),
  };
  if (result.status === 'queued') {
    if (index === undefined) log.info(fields, 'trade queued');
    else log.debug(fields, 'trade queued');
  } else if (result.status === 'duplicate')
    log.info(fields, 'duplicate trade: already accepted with the same payload');
  else log.warn(fields, 'trade conflict: tradeId already accepted with another payload');
}

export function registerTradeRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { deps, metrics } = ctx;

  app.post('/v1/trades', async (request, reply) => {
    requireJsonContentType(request.headers['content-type']);
    const validation = validateTrade(request.body);
    if (!validation.ok) {
      metrics.trades.inc({ outcome: 'invalid' });
      logRejected(request.log, request.body, validation.errors);
      throw new ApiError(
        'validation_failed',
        `invalid trade: ${summarize(validation.errors)}`,
        validation.errors,
      );
    }
    const item = toItem(validation.trade);
    const [result] = await enqueueAll(ctx, request, [item]);
    if (!result) throw new Error('enqueue returned no result for one item');
    metrics.trades.inc({ outcome: result.status });
    logOutcome(request.log, item, result);

    if (result.status === 'queued') {
      const body: TradeAccepted = {
        tradeId: item.tradeId,
        partitionKey: item.partitionKey,
        seq: result.seq,
        status: 'queued',
      };
      return reply.code(202).send(body);
    }
    if (result.status === 'conflict') throw conflictError(item.tradeId, result.seq);
    const where = await redisCall(
      'locate duplicate',
      () => locateTrade(deps.redis, deps.queue.keys, item.tradeId),
      ctx.redisTimeoutMs,
    );
    const body: TradeDuplicate = {
      tradeId: item.tradeId,
      partitionKey: where?.partitionKey ?? item.partitionKey,
      seq: result.seq,
      status: where?.state === 'queued' ? 'queued' : 'processed',
      duplicate: true,
    };
    return reply.code(200).send(body);
  });

  app.post('/v1/trades/batch', async (request, reply) => {
    requireJsonContentType(request.headers['content-type']);
    const trades = parseBatchEnvelope(request.body, deps.config.batchMaxTrades);
    ctx.chargeTrades(request, trades.length);

    const results: BatchItemResult[] = new Array<BatchItemResult>(trades.length);
    const valid: { index: number; item: EnqueueItem }[] = [];
    trades.forEach((input, index) => {
      const validation = validateTrade(input);
      if (validation.ok) {
        valid.push({ index, item: toItem(validation.trade) });
        return;
      }
      const tradeId = wellFormedTradeId(input);
      logRejected(request.log, input, validation.errors, index);
      results[index] = {
        index,
        ...(tradeId === undefined ? {} : { tradeId }),
        status: 'invalid',
        error: errorBody(
          'validation_failed',
          `invalid trade: ${summarize(validation.errors)}`,
          validation.errors,
        ).error,
      };
    });

    const enqueued =
      valid.length > 0
        ? await enqueueAll(
            ctx,
            request,
            valid.map((v) => v.item),
          )
        : [];
    valid.forEach(({ index, item }, i) => {
      const r = enqueued[i];
      if (!r) throw new Error(`enqueue returned ${enqueued.length} results for ${valid.length} items`);
      logOutcome(request.log, item, r, index);
      const base = { index, tradeId: item.tradeId, partitionKey: item.partitionKey };
      results[index] =
        r.status === 'conflict'
          ? { ...base, status: 'conflict', error: conflictError(item.tradeId, r.seq).toBody().error }
          : { ...base, status: r.status, seq: r.seq };
    });

    const summary = { total: trades.length, queued: 0, duplicate: 0, conflict: 0, invalid: 0 };
    for (const r of results) summary[r.status] += 1;
    for (const outcome of ['queued', 'duplicate', 'conflict', 'invalid'] as const) {
      if (summary[outcome] > 0) metrics.trades.inc({ outcome }, summary[outcome]);
    }
    request.log.info(summary, 'batch enqueued');
    const body: BatchResponse = { results, summary };
    return reply.code(summary.queued === summary.total ? 202 : 200).send(body);
  });
}

/**
 * Checks the batch envelope `{ "trades": [...] }`: an object with exactly
 * that field, a non-empty array of at most `max` items. Reports every
 * envelope problem at once (400), a too-long batch on its own (413).
 */
export function parseBatchEnvelope(body: unknown, max: number): unknown[] {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new ApiError('validation_failed', 'the batch must be a JSON object {"trades": [...]}', [
      {
        path: '',
        code: 'type',
        message: `the body must be an object with one field, "trades" (an array of trades); got ${Array.isArray(body) ? 'an array: wrap it as {"trades": [...]}' : typeof body}`,
      },
    ]);
  }
  const record = body as Record<string, unknown>;
  const details: ErrorDetail[] = [];
  const trades = record.trades;
  if (!Object.hasOwn(record, 'trades') || trades === undefined) {
    details.push({
      path: 'trades',
      code: 'required',
      message: 'trades is required: an array of 1 to ' + `${max} trades`,
    });
  } else if (!Array.isArray(trades)) {
    details.push({
      path: 'trades',
      code: 'type',
      message: `trades must be an array of trades; got ${trades === null ? 'null' : typeof trades}`,
    });
  } else if (trades.length === 0) {
    details.push({
      path: 'trades',
      code: 'range',
      message: `trades must hold 1 to ${max} trades; got an empty array`,
    });
  }
  for (const key of Object.keys(record)) {
    if (!(BATCH_FIELDS as readonly string[]).includes(key)) {
      details.push({
        path: key,
        code: 'unknown_field',
        message: `unknown field ${JSON.stringify(key.slice(0, 40))}: remove it (the batch envelope has only "trades")`,
      });
    }
  }
  if (details.length > 0) {
    throw new ApiError('validation_failed', `invalid batch: ${summarize(details)}`, details);
  }
  const list = trades as unknown[];
  if (list.length > max) {
    throw new ApiError(
      'batch_too_large',
      `the batch holds ${list.length} trades; at most ${max} (BATCH_MAX_TRADES) are accepted per request: split it into batches of at most ${max}`,
      [{ path: 'trades', code: 'range', message: `at most ${max} items; got ${list.length}` }],
    );
  }
  return list;
}
