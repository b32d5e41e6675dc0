/**
 * Probes and metrics: /healthz (the process answers), /readyz (Redis and
 * PostgreSQL answer, each within a short deadline), /metrics.
 *
 * Liveness never looks at dependencies: restarting the producer does not fix
 * a Redis outage, it only adds a restart storm to it. Readiness does, so that
 * Kubernetes stops routing trades to a replica that would answer 503 anyway.
 */
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';

import type { RouteContext } from './context';
import { ApiError, describeError, withTimeout, type ErrorDetail } from './errors';

/** 200 body of GET /readyz. */
export interface ReadyResponse {
  status: 'ready';
  checks: { redis: 'ok'; postgres: 'ok' };
}

export function registerHealthRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { deps } = ctx;

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async () => {
    const ms = ctx.readinessTimeoutMs;
    const [redis, postgres] = await Promise.allSettled([
      withTimeout(deps.redis.ping(), ms, 'Redis PING'),
      withTimeout(sql`select 1`.execute(deps.db), ms, 'PostgreSQL select 1'),
    ]);
    const down: ErrorDetail[] = [];
    if (redis.status === 'rejected')
      down.push({ path: 'redis', code: 'unavailable', message: `Redis: ${describeError(redis.reason)}` });
    if (postgres.status === 'rejected') {
      down.push({
        path: 'postgres',
        code: 'unavailable',
        message: `PostgreSQL: ${describeError(postgres.reason)}`,
      });
    }
    if (down.length > 0) {
      throw new ApiError(
        'not_ready',
        `not ready: ${down.map((d) => d.path).join(' and ')} unavailable`,
        down,
      );
    }
    const body: ReadyResponse = { status: 'ready', checks: { redis: 'ok', postgres: 'ok' } };
    return body;
  });

  app.get('/metrics', async (_request, reply) => {
    const text = await ctx.registry.metrics();
    return reply.type(ctx.registry.contentType).send(text);
  });
}
