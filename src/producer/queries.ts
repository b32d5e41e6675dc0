/**
 * Read routes: where a trade is (queued in Redis, applied or dead-lettered in
 * PostgreSQL) and the position of a partition.
 */
import type { FastifyInstance } from 'fastify';

import {
  getDeadLetter,
  getPosition,
  getTrade,
  type DeadLetterRecord,
  type TradeRecord,
} from '../db/repositories';
import type { JsonObject } from '../db/types';
import { canonicalDecimalString, PARTITION_ID_PATTERN, partitionKey, TRADE_ID_PATTERN } from '../domain';
import { locateTrade } from '../queue/signals';
import type { RouteContext } from './context';
import { ApiError, dbCall, redisCall, type ErrorDetail } from './errors';

/** GET /v1/trades/:tradeId while the trade waits in Redis. */
export interface QueuedTradeView {
  tradeId: string;
  partitionKey: string;
  seq: number;
  state: 'queued';
}

/** GET /v1/trades/:tradeId once a worker applied it. */
export interface AppliedTradeView {
  tradeId: string;
  partitionKey: string;
  seq: number;
  state: 'applied';
  type: TradeRecord['type'];
  /** NEW: `live` or `cancelled`; the row of an AMEND or CANCEL: `amend` / `cancel`. */
  tradeStatus: TradeRecord['status'];
  refTradeId: string | null;
  enqueuedAt: string;
  appliedAt: string;
  /** NEW trades only: the terms after the AMENDs applied so far (canonical decimals). */
  effective?: { side: string; quantity: string; price: string; currency: string };
  /** The canonical trade as enqueued. */
  trade: JsonObject;
}

/** GET /v1/trades/:tradeId once a worker dead-lettered it. */
export interface DeadLetteredTradeView {
  tradeId: string;
  partitionKey: string;
  seq: number;
  state: 'dead_lettered';
  reasonCode: string;
  reason: string;
  deadLetteredAt: string;
  replayedAt: string | null;
  trade: JsonObject;
}

export type TradeView = QueuedTradeView | AppliedTradeView | DeadLetteredTradeView;

/** GET /v1/positions/:accountId/:bookId/:securityId; decimals are canonical strings. */
export interface PositionView {
  partitionKey: string;
  accountId: string;
  bookId: string;
  securityId: string;
  currency: string | null;
  netQuantity: string;
  boughtQuantity: string;
  soldQuantity: string;
  boughtNotional: string;
  soldNotional: string;
  tradeCount: number;
  lastSeq: number;
  digest: string;
  updatedAt: string;
}

const decimalOrNull = (v: string | null) => (v === null ? null : canonicalDecimalString(v));

function appliedView(t: TradeRecord): AppliedTradeView {
  const view: AppliedTradeView = {
    tradeId: t.tradeId,
    partitionKey: t.partitionKey,
    seq: t.seq,
    state: 'applied',
    type: t.type,
    tradeStatus: t.status,
    refTradeId: t.refTradeId,
    enqueuedAt: t.enqueuedAt.toISOString(),
    appliedAt: t.appliedAt.toISOString(),
    trade: t.payload,
  };
  if (
    t.type === 'NEW' &&
    t.effSide !== null &&
    t.effQuantity !== null &&
    t.effPrice !== null &&
    t.effCurrency !== null
  ) {
    view.effective = {
      side: t.effSide,
      quantity: decimalOrNull(t.effQuantity)!,
      price: decimalOrNull(t.effPrice)!,
      currency: t.effCurrency,
    };
  }
  return view;
}

function deadLetteredView(d: DeadLetterRecord): DeadLetteredTradeView {
  return {
    tradeId: d.tradeId,
    partitionKey: d.partitionKey,
    seq: d.seq,
    state: 'dead_lettered',
    reasonCode: d.reasonCode,
    reason: d.reason,
    deadLetteredAt: d.createdAt.toISOString(),
    replayedAt: d.replayedAt?.toISOString() ?? null,
    trade: d.payload,
  };
}

function badParameter(name: string, value: string, expected: string): ErrorDetail {
  const shown = JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return { path: name, code: 'pattern', message: `${name} must be ${expected}; got ${shown}` };
}

const TRADE_ID_EXPECTED = '1 to 64 characters: a letter or digit, then letters, digits, ".", "_", ":" or "-"';
const PARTITION_ID_EXPECTED =
  '1 to 64 characters from letters, digits and . _ : / @ # + - (percent-encode / # + in the URL)';

export function registerQueryRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { deps } = ctx;

  const readPg = (tradeId: string) =>
    dbCall(
      'trade lookup',
      () => Promise.all([getTrade(deps.db, tradeId), getDeadLetter(deps.db, tradeId)]),
      ctx.dbTimeoutMs,
    );
  const fromPg = ([trade, dead]: [TradeRecord | undefined, DeadLetterRecord | undefined]):
    TradeView | undefined =>
    // Applied wins over a dead letter: a dead letter that was replayed and then applied is applied.
    trade ? appliedView(trade) : dead ? deadLetteredView(dead) : undefined;

  app.get<{ Params: { tradeId: string } }>('/v1/trades/:tradeId', async (request) => {
    const { tradeId } = request.params;
    if (!TRADE_ID_PATTERN.test(tradeId)) {
      const detail = badParameter('tradeId', tradeId, TRADE_ID_EXPECTED);
      throw new ApiError('invalid_parameter', detail.message, [detail]);
    }
    // Both stores at once. PostgreSQL is the truth once a trade is committed (it may
    // still be in the Redis backlog until the worker acks); Redis knows the rest.
    const [pg, redis] = await Promise.allSettled([
      readPg(tradeId),
      redisCall('trade lookup', () => locateTrade(deps.redis, deps.queue.keys, tradeId), ctx.redisTimeoutMs),
    ]);
    let view = pg.status === 'fulfilled' ? fromPg(pg.value) : undefined;
    if (!view && redis.status === 'fulfilled' && redis.value?.state === 'queued') {
      view = { tradeId, partitionKey: redis.value.partitionKey, seq: redis.value.seq, state: 'queued' };
    }
    if (!view) {
      if (pg.status === 'rejected') throw pg.reason;
      if (redis.status === 'rejected') throw redis.reason;
      // Acked in Redis after our PostgreSQL read: the commit happened in between, read again.
      if (redis.value?.state === 'done') view = fromPg(await readPg(tradeId));
    }
    if (!view) {
      throw new ApiError(
        'trade_not_found',
        `no trade ${JSON.stringify(tradeId)} is queued, applied or dead-lettered`,
        [{ path: 'tradeId', code: 'not_found', message: `unknown tradeId ${JSON.stringify(tradeId)}` }],
      );
    }
    request.log.info(
      { tradeId, partitionKey: view.partitionKey, seq: view.seq, state: view.state },
      'trade looked up',
    );
    return view;
  });

  app.get<{ Params: { accountId: string; bookId: string; securityId: string } }>(
    '/v1/positions/:accountId/:bookId/:securityId',
    async (request) => {
      const params = request.params;
      const problems: ErrorDetail[] = [];
      for (const name of ['accountId', 'bookId', 'securityId'] as const) {
        if (!PARTITION_ID_PATTERN.test(params[name]))
          problems.push(badParameter(name, params[name], PARTITION_ID_EXPECTED));
      }
      if (problems.length > 0) {
        throw new ApiError(
          'invalid_parameter',
          `invalid position path: ${problems.map((p) => p.path).join(', ')}`,
          problems,
        );
      }
      const key = partitionKey(params.accountId, params.bookId, params.securityId);
      const p = await dbCall('position lookup', () => getPosition(deps.db, key), ctx.dbTimeoutMs);
      if (!p) {
        throw new ApiError(
          'position_not_found',
          `no position for partition ${JSON.stringify(key)}: no trade of it has been applied yet`,
        );
      }
      const view: PositionView = {
        partitionKey: p.partitionKey,
        accountId: p.accountId,
        bookId: p.bookId,
        securityId: p.securityId,
        currency: p.currency,
        netQuantity: canonicalDecimalString(p.netQuantity),
        boughtQuantity: canonicalDecimalString(p.boughtQuantity),
        soldQuantity: canonicalDecimalString(p.soldQuantity),
        boughtNotional: canonicalDecimalString(p.boughtNotional),
        soldNotional: canonicalDecimalString(p.soldNotional),
        tradeCount: p.tradeCount,
        lastSeq: p.lastSeq,
        digest: p.digest,
        updatedAt: p.updatedAt.toISOString(),
      };
      return view;
    },
  );
}
