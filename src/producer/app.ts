/**
 * The producer HTTP API as a Fastify instance that is built but not
 * listening, so tests can drive it with `app.inject` and main.ts can listen.
 *
 * It receives every client it uses (STYLE principle 1) and opens nothing.
 * The cross-cutting rules live here: one error shape for every failure, JSON
 * only, auth before the body is read, bounded metric labels, and a draining
 * mode during shutdown. The routes live in trades.ts, queries.ts and health.ts.
 */
import { randomUUID } from 'node:crypto';

import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
} from 'fastify';

import { TokenVerifier } from './auth';
import { RateLimiter } from './rate-limit';
import { fieldDetail, unsupportedMediaType, type ProducerDeps, type RouteContext } from './context';
import { ApiError, describeError, errorBody, type ErrorBody } from './errors';
import { registerHealthRoutes } from './health';
import { readSignals } from '../queue/signals';
import { registerDashboard } from '../dashboard';
import {
  createDashboardMetrics,
  createProducerMetrics,
  createRegistry,
  methodLabel,
  registerQueueMetrics,
  statusClass,
  UNMATCHED_ROUTE,
} from '../observability/metrics';
import { TRACING_OFF } from '../observability/tracing';
import { registerQueryRoutes } from './queries';
import { registerTradeRoutes } from './trades';

export type { ProducerDeps } from './context';

/** Routes that answer without a token: probes must work whatever the auth setup. */
const OPEN_ROUTES: ReadonlySet<string> = new Set(['/healthz', '/readyz']);

/** The dashboard's routes: its own credentials (a browser cannot send API bearer tokens), see src/dashboard. */
const DASHBOARD_PREFIX = '/dashboard';

/** Slow-client guard: the whole request must arrive within this. */
const REQUEST_TIMEOUT_MS = 30_000;

/** Routes the rate limit applies to: the API itself, not probes, metrics or the dashboard. */
const LIMITED_PREFIX = '/v1/';

/** At most one summary line about refused (rate-limited) requests per this interval. */
const RATE_LIMIT_LOG_INTERVAL_MS = 60_000;

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * Who is calling, for the rate limit and the logs: `token:<tokenId>` (a
     * short hash, never the token) when authenticated, else `ip:<address>`.
     */
    tradefleetClient?: string;
    /** Refused by the rate limit or the in-flight cap: not logged one by one (see noteRefused). */
    tradefleetRateLimited?: boolean;
  }
}

/** Extra headers an ApiError response carries (WWW-Authenticate). */
const errorHeaders = new WeakMap<ApiError, Record<string, string>>();

/** Attaches response headers to an error, e.g. WWW-Authenticate on a 401. */
export function withHeaders(err: ApiError, headers: Record<string, string>): ApiError {
  errorHeaders.set(err, headers);
  return err;
}

function sendError(reply: FastifyReply, err: ApiError): FastifyReply {
  if (err.retryAfterSeconds !== undefined) void reply.header('retry-after', String(err.retryAfterSeconds));
  for (const [name, value] of Object.entries(errorHeaders.get(err) ?? {})) void reply.header(name, value);
  const body: ErrorBody = err.toBody();
  return reply.code(err.status).type('application/json; charset=utf-8').send(body);
}

/** Maps Fastify's own client errors (body limit, media type, ...) onto the catalogue. */
function fromFrameworkError(
  err: FastifyError,
  bodyLimitBytes: number,
  contentType: string | undefined,
): ApiError | undefined {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError(
        'body_too_large',
        `the request body is larger than BODY_LIMIT_BYTES=${bodyLimitBytes} bytes; send fewer trades per request`,
        fieldDetail('', 'range', `at most ${bodyLimitBytes} bytes`),
      );
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return unsupportedMediaType(contentType);
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new ApiError(
        'malformed_json',
        'the body is not valid JSON',
        fieldDetail('', 'syntax', err.message),
      );
    case 'FST_ERR_BAD_URL':
      return new ApiError('bad_request', 'the URL is not valid (bad percent-encoding?)');
    case 'FST_ERR_MAX_PARAM_LENGTH':
      // Fastify's message quotes the whole path: never echo it.
      return new ApiError('invalid_parameter', 'a path parameter is too long (at most 512 characters)');
    default:
      if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
        // Bounded: a framework message may quote client input.
        return new ApiError('bad_request', err.message.slice(0, 200));
      }
      return undefined;
  }
}

/** The `charset` parameter of a Content-Type header, lower case, or undefined. */
function charsetOf(contentType: string | undefined): string | undefined {
  const m = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(contentType ?? '');
  return m?.[1]?.toLowerCase();
}

/**
 * Builds the producer API. Call `listen` on the result, or `inject` in tests;
 * `close()` drains in-flight requests, answering new ones with 503
 * `shutting_down`, and closes none of the injected clients.
 */
export function buildProducerApp(deps: ProducerDeps): FastifyInstance {
  const registry = deps.metricsRegistry ?? createRegistry('producer');
  const redisTimeoutMs = deps.redisTimeoutMs ?? 3000;
  const metrics = createProducerMetrics(registry);
  const dashboardMetrics = createDashboardMetrics(registry);
  let signalErrorLogged = 0;
  registerQueueMetrics(registry, () => readSignals(deps.redis, deps.queue.keys), {
    timeoutMs: Math.min(redisTimeoutMs, 1000),
    onError: (err) => {
      // One line a minute at most: an outage fails every scrape.
      if (Date.now() - signalErrorLogged < 60_000) return;
      signalErrorLogged = Date.now();
      deps.logger.warn(
        { err: { message: describeError(err) } },
        'could not read the queue signals for /metrics',
      );
    },
  });
  const limiter =
    deps.rateLimit && deps.rateLimit.perSecond > 0
      ? new RateLimiter({
          perSecond: deps.rateLimit.perSecond,
          burst: Math.max(1, deps.rateLimit.burst),
          ...(deps.rateLimit.maxClients === undefined ? {} : { maxClients: deps.rateLimit.maxClients }),
        })
      : undefined;
  const ctx: RouteContext = {
    deps,
    metrics,
    tracing: deps.tracing ?? TRACING_OFF,
    registry,
    redisTimeoutMs,
    dbTimeoutMs: deps.dbTimeoutMs ?? 5000,
    readinessTimeoutMs: deps.readinessTimeoutMs ?? 1000,
    chargeTrades: (request, trades) => {
      // One unit was taken when the request was admitted.
      if (limiter && request.tradefleetClient !== undefined)
        limiter.charge(request.tradefleetClient, trades - 1);
    },
  };
  const bodyLimit = deps.config.bodyLimitBytes;
  const verifier = new TokenVerifier(deps.authTokens ?? []);
  /** 429 bodies by Retry-After value: a refused request costs no error object and no serialization. */
  const rateLimitedBodies = new Map<number, string>();
  const rateLimitedBody = (retryAfterSeconds: number): string => {
    let body = rateLimitedBodies.get(retryAfterSeconds);
    if (body === undefined) {
      body = JSON.stringify(
        errorBody(
          'rate_limited',
          `too many trades from this client: at most ${deps.rateLimit?.perSecond} per second ` +
            `(burst ${deps.rateLimit?.burst}) per producer replica; nothing was enqueued; retry after ${retryAfterSeconds} s`,
        ),
      );
      if (rateLimitedBodies.size < 100) rateLimitedBodies.set(retryAfterSeconds, body);
    }
    return body;
  };
  let refused = 0;
  let refusedLoggedAt = 0;
  const noteRefused = (client: string) => {
    refused += 1;
    const now = Date.now();
    if (now - refusedLoggedAt < RATE_LIMIT_LOG_INTERVAL_MS) return;
    deps.logger.warn(
      { refused, client, clients: limiter?.size ?? 0 },
      `rate limit: ${refused} request(s) refused since the last report (RATE_LIMIT_PER_SECOND=${deps.rateLimit?.perSecond})`,
    );
    refused = 0;
    refusedLoggedAt = now;
  };
  const maxInflight = deps.maxInflightRequests ?? 0;
  let inflight = 0;
  let shed = 0;
  let shedLoggedAt = 0;
  const overloadedBody = JSON.stringify(
    errorBody(
      'overloaded',
      `this producer replica is working on ${maxInflight} requests (MAX_INFLIGHT_REQUESTS); nothing was enqueued; retry later`,
    ),
  );
  const noteShed = () => {
    shed += 1;
    const now = Date.now();
    if (now - shedLoggedAt < RATE_LIMIT_LOG_INTERVAL_MS) return;
    deps.logger.warn(
      { shed, inflight },
      `overloaded: ${shed} request(s) refused with 503 since the last report (MAX_INFLIGHT_REQUESTS=${maxInflight})`,
    );
    shed = 0;
    shedLoggedAt = now;
  };

  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit,
    requestTimeout: REQUEST_TIMEOUT_MS,
    genReqId: () => randomUUID(),
    // One access line per request, written in onResponse below, instead of Fastify's two
    // ("incoming request" and "request completed"): log lines are a large part of a
    // request's cost, and a flood of refused requests must stay cheap.
    logController: new LogController({ disableRequestLogging: true }),
    // Draining is ours (see preClose below) so that it answers in the API's error shape.
    return503OnClosing: false,
    // Longer than any valid parameter, so an over-long one gets our 400 rather than a 404.
    routerOptions: { maxParamLength: 512 },
    frameworkErrors: (err, request, reply) => {
      void sendError(
        reply,
        fromFrameworkError(err, bodyLimit, request.headers['content-type']) ??
          new ApiError('bad_request', err.message),
      );
    },
  }) as unknown as FastifyInstance;

  if (!verifier.enabled) {
    deps.logger.warn('bearer-token auth is off: no API tokens configured; every route is open');
  }

  // JSON is the only media type; parse it ourselves to answer in our error shape.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const charset = charsetOf(request.headers['content-type']);
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
      done(unsupportedMediaType(request.headers['content-type']), undefined);
      return;
    }
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') {
      done(
        new ApiError(
          'malformed_json',
          'the body is empty; send a JSON object',
          fieldDetail('', 'required', 'a JSON body is required'),
        ),
        undefined,
      );
      return;
    }
    try {
      // JSON.parse defines "__proto__" as an own property (it never sets the prototype),
      // and validation reports it as an unknown field.
      done(null, JSON.parse(text));
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      done(
        new ApiError(
          'malformed_json',
          `the body is not valid JSON: ${reason}`,
          fieldDetail('', 'syntax', reason),
        ),
        undefined,
      );
    }
  });

  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });

  app.addHook('onRequest', async (request, reply) => {
    void reply.header('x-request-id', request.id);
    if (closing) {
      void reply.header('connection', 'close');
      throw new ApiError(
        'shutting_down',
        'the producer is shutting down; retry (another replica will answer)',
      );
    }
    const route = request.routeOptions.url ?? '';
    if (OPEN_ROUTES.has(route)) return;
    // Load shedding first: a refusal must cost less than the work it avoids.
    if (maxInflight > 0 && route.startsWith(LIMITED_PREFIX)) {
      if (inflight >= maxInflight) {
        noteShed();
        request.tradefleetRateLimited = true;
        return reply
          .code(503)
          .header('retry-after', '1')
          .type('application/json; charset=utf-8')
          .send(overloadedBody);
      }
      inflight += 1;
      // 'close' comes once the response is done, or the client went away: either way it no longer counts.
      reply.raw.once('close', () => (inflight -= 1));
    }
    if (deps.dashboard && (route === DASHBOARD_PREFIX || route.startsWith(`${DASHBOARD_PREFIX}/`))) return;
    if (verifier.enabled) {
      const result = verifier.check(request.headers.authorization);
      if (!result.ok) {
        throw withHeaders(new ApiError('unauthorized', result.message), {
          'www-authenticate': result.wwwAuthenticate,
        });
      }
      request.tradefleetClient = `token:${result.id}`;
    } else {
      request.tradefleetClient = `ip:${request.ip}`;
    }
    // Before the body is read, and as cheaply as possible: under a flood, most requests end here.
    if (limiter && route.startsWith(LIMITED_PREFIX)) {
      const admission = limiter.admit(request.tradefleetClient);
      if (!admission.ok) {
        noteRefused(request.tradefleetClient);
        request.tradefleetRateLimited = true;
        return reply
          .code(429)
          .header('retry-after', String(admission.retryAfterSeconds))
          .type('application/json; charset=utf-8')
          .send(rateLimitedBody(admission.retryAfterSeconds));
      }
    }
  });

  // A keep-alive connection whose request was in flight when close() began is not idle
  // then, so the server would wait for the client to drop it: close it after this response.
  app.addHook('onSend', async (_request, reply, payload) => {
    if (closing) void reply.header('connection', 'close');
    return payload;
  });

  app.addHook('onResponse', async (request, reply) => {
    if (!request.tradefleetRateLimited) {
      request.log.info(
        {
          method: request.method,
          // The path only: a query string may carry what a client should not have sent.
          url: request.url.split('?')[0]!.slice(0, 200),
          statusCode: reply.statusCode,
          ms: Math.round(reply.elapsedTime * 10) / 10,
          ...(request.tradefleetClient === undefined ? {} : { client: request.tradefleetClient }),
        },
        'request completed',
      );
    }
    ctx.metrics.requestDuration.observe(
      {
        method: methodLabel(request.method),
        route: request.routeOptions.url ?? UNMATCHED_ROUTE,
        status_class: statusClass(reply.statusCode),
      },
      reply.elapsedTime / 1000,
    );
  });

  app.setErrorHandler((error: FastifyError | ApiError | Error, request, reply) => {
    let apiError: ApiError | undefined;
    if (error instanceof ApiError) apiError = error;
    else apiError = fromFrameworkError(error as FastifyError, bodyLimit, request.headers['content-type']);
    if (apiError === undefined) {
      request.log.error({ err: error }, 'unhandled error');
      apiError = new ApiError('internal_error', `internal error; request id ${request.id}`);
    } else if (apiError.status >= 500) {
      // A dependency outage repeats on every request and probe: the reason, not a stack each time.
      request.log.warn(
        { code: apiError.code, status: apiError.status, details: apiError.details },
        apiError.message,
      );
    } else {
      request.log.info(
        { code: apiError.code, status: apiError.status, client: request.tradefleetClient },
        'request rejected',
      );
    }
    return sendError(reply, apiError);
  });

  app.setNotFoundHandler((request, reply) =>
    sendError(
      reply,
      new ApiError(
        'route_not_found',
        `no route ${request.method} ${request.url.split('?')[0]!.slice(0, 200)}`,
      ),
    ),
  );

  registerHealthRoutes(app, ctx);
  registerTradeRoutes(app, ctx);
  registerQueryRoutes(app, ctx);
  if (deps.dashboard) {
    void app.register(registerDashboard, {
      prefix: DASHBOARD_PREFIX,
      ...deps.dashboard,
      // The API's bearer tokens open the dashboard too (scripts, monitoring); see src/dashboard.
      ...(verifier.enabled ? { bearer: verifier } : {}),
      queue: deps.queue,
      redis: deps.redis,
      db: deps.db,
      logger: deps.logger,
      metrics: dashboardMetrics,
      redisTimeoutMs,
      dbTimeoutMs: ctx.dbTimeoutMs,
    });
  }
  return app;
}
