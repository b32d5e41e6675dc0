/**
 * The dashboard at /dashboard, served by the producer (a Fastify plugin that
 * buildProducerApp registers when DASHBOARD_PASSWORD is set):
 *
 * - /dashboard: the overview, partitions ready / leased / retrying and expired
 *   leases (readLeaseCounts), halted partitions with resume / retry-head /
 *   skip-head, pending partitions by oldest waiting trade, hottest partitions
 *   by backlog, the latest dead letters;
 * - /dashboard/partition?key=: a partition's head trades and its position;
 * - /dashboard/dead-letters: dead letters with replay;
 * - /dashboard/search?q=: search by tradeId and by partition key;
 * - POST /dashboard/actions/*: the operator actions (actions.ts).
 *
 * The pages are server-rendered HTML that refreshes itself.
 *
 * Access: nothing without the configured credentials (login form and signed
 * session cookie, HTTP Basic, or an API bearer token), every state change is
 * a POST with a same-origin check and (except with a bearer token) a CSRF
 * token, and DASHBOARD_READ_ONLY refuses them (403). Pages carry a strict
 * Content-Security-Policy and every value is escaped (html.ts).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { Kysely } from 'kysely';

import {
  getPosition,
  getTrade,
  listDeadLetters,
  recentTrades,
  type Database,
  type DeadLetterWithReplay,
} from '../db';
import { parsePartitionKey, TRADE_ID_PATTERN } from '../domain';
import type { DashboardAction, DashboardMetrics } from '../observability/metrics';
import type { Logger } from '../observability/logger';
import { ApiError, dbCall, redisCall } from '../producer/errors';
import type { PartitionAdmin } from '../queue/admin';
import { decodeEntry } from '../queue/codec';
import type { PartitionQueue } from '../queue/partition-queue';
import {
  hottestPartitions,
  locateTrade,
  oldestPartitions,
  readHead,
  readLeaseCounts,
  readSignals,
} from '../queue/signals';
import {
  haltPartition,
  replayDeadLetter,
  resumePartition,
  skipHead,
  type ActionDeps,
  type ActionOutcome,
} from './actions';
import {
  cookie,
  DashboardAuth,
  readCookie,
  SESSION_COOKIE,
  SESSION_TTL_MS,
  verifyBearer,
  type BearerVerifier,
  type Principal,
} from './auth';
import {
  deadLettersPage,
  loginPage,
  messagePage,
  overviewPage,
  partitionPage,
  REFRESH_SCRIPT,
  searchPage,
  STYLESHEET,
  type HaltedRow,
  type PageContext,
} from './views';

export { DashboardAuth } from './auth';
export * from './actions';

/** What the producer's main.ts hands the dashboard. */
export interface DashboardAccess {
  readonly user: string;
  /** Must not be empty. */
  readonly password: string;
  /** Refuse every action (403). @default false */
  readonly readOnly?: boolean;
  /** Operator actions on partitions (its connection is the producer's). */
  readonly admin: PartitionAdmin;
  /** Seconds between page refreshes; 0 turns them off. @default 5 */
  readonly refreshSeconds?: number;
  /**
   * Accept the API's bearer tokens too (`Authorization: Bearer <token>`), with
   * the access of a logged-in user: DASHBOARD_READ_ONLY still refuses actions.
   * @default none
   */
  readonly bearer?: BearerVerifier;
}

export interface DashboardPluginOptions extends DashboardAccess {
  readonly queue: PartitionQueue;
  readonly redis: Redis;
  readonly db: Kysely<Database>;
  readonly logger: Logger;
  readonly metrics: DashboardMetrics;
  readonly redisTimeoutMs: number;
  readonly dbTimeoutMs: number;
}

const FLASH_COOKIE = 'tf_dashboard_flash';
const BASE = '/dashboard';
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/** Public: the login page and its stylesheet. */
const PUBLIC = new Set([`${BASE}/login`, `${BASE}/assets/dashboard.css`, `${BASE}/assets/refresh.js`]);

declare module 'fastify' {
  interface FastifyRequest {
    dashboardPrincipal?: Principal;
  }
}

function isSecure(request: FastifyRequest): boolean {
  return request.protocol === 'https' || request.headers['x-forwarded-proto'] === 'https';
}

function wantsHtml(request: FastifyRequest): boolean {
  return /text\/html/.test(String(request.headers.accept ?? ''));
}

/** A same-site target for redirects: a path under /dashboard, never another origin. */
function safeBack(value: unknown): string {
  const v = typeof value === 'string' ? value : '';
  return /^\/dashboard(?:[/?#]|$)/.test(v) && !v.startsWith('//') && !/[\\\r\n]/.test(v) ? v : BASE;
}

/** A state-changing request must come from a page of this origin (CSRF defence beside the CSRF token). */
function sameOrigin(request: FastifyRequest): boolean {
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return false;
  const origin = request.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === request.headers.host;
  } catch {
    return false;
  }
}

function parseForm(body: unknown): Record<string, string> {
  return body !== null && typeof body === 'object' ? (body as Record<string, string>) : {};
}

function securityHeaders(reply: FastifyReply, page: boolean): void {
  void reply.header('cache-control', 'no-store');
  void reply.header('x-content-type-options', 'nosniff');
  // same-origin, not no-referrer: with no-referrer a browser sends `Origin: null` on form posts, which sameOrigin() refuses.
  void reply.header('referrer-policy', 'same-origin');
  void reply.header('x-frame-options', 'DENY');
  if (page) void reply.header('content-security-policy', CSP);
}

function sendPage(reply: FastifyReply, status: number, body: string): FastifyReply {
  securityHeaders(reply, true);
  return reply.code(status).type('text/html; charset=utf-8').send(body);
}

export async function registerDashboard(app: FastifyInstance, opts: DashboardPluginOptions): Promise<void> {
  const auth = new DashboardAuth(opts.user, opts.password);
  const readOnly = opts.readOnly ?? false;
  const refreshSeconds = opts.refreshSeconds ?? 5;
  const keys = opts.queue.keys;
  const deps: ActionDeps = {
    admin: opts.admin,
    queue: opts.queue,
    redis: opts.redis,
    db: opts.db,
    logger: opts.logger,
  };
  const redis = <T>(what: string, fn: () => Promise<T>) => redisCall(what, fn, opts.redisTimeoutMs);
  const pg = <T>(what: string, fn: () => Promise<T>) => dbCall(what, fn, opts.dbTimeoutMs);

  // Forms: application/x-www-form-urlencoded, in this plugin's scope only (the API stays JSON-only).
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    const out: Record<string, string> = {};
    for (const [k, v] of new URLSearchParams(String(body))) out[k] = v;
    done(null, out);
  });

  app.addHook('onRequest', async (request, reply) => {
    const url = request.routeOptions.url ?? request.url.split('?')[0]!;
    securityHeaders(reply, false);
    if (request.method !== 'GET' && request.method !== 'HEAD' && !sameOrigin(request)) {
      opts.logger.warn({ origin: request.headers.origin, url }, 'dashboard: cross-origin request refused');
      return sendPage(reply, 403, messagePage(BASE, 'Forbidden', 'Cross-origin requests are refused.'));
    }
    if (PUBLIC.has(url)) return;
    const principal =
      auth.verifySession(readCookie(request.headers.cookie, SESSION_COOKIE)) ??
      auth.verifyBasic(request.headers.authorization) ??
      verifyBearer(opts.bearer, request.headers.authorization);
    if (!principal) {
      if (wantsHtml(request) && request.method === 'GET') {
        void reply.header('www-authenticate', 'FormBased realm="tradefleet-dashboard"');
        return sendPage(reply, 401, loginPage(BASE, { next: safeBack(request.url) }));
      }
      void reply.header('www-authenticate', 'Basic realm="tradefleet-dashboard", charset="UTF-8"');
      return reply.code(401).type('text/plain; charset=utf-8').send('authentication required\n');
    }
    request.dashboardPrincipal = principal;
  });

  app.setErrorHandler((error: Error, request, reply) => {
    const status =
      error instanceof ApiError
        ? error.status
        : typeof (error as Error & { statusCode?: unknown }).statusCode === 'number'
          ? Number((error as Error & { statusCode?: unknown }).statusCode)
          : 500;
    if (status >= 500) opts.logger.error({ err: error, url: request.url }, 'dashboard error');
    const message =
      error instanceof ApiError || status < 500 ? error.message : `internal error; request id ${request.id}`;
    return sendPage(reply, status, messagePage(BASE, status >= 500 ? 'Unavailable' : 'Error', message));
  });

  app.get('/assets/dashboard.css', (_request, reply) => {
    void reply.header('cache-control', 'public, max-age=300');
    return reply.type('text/css; charset=utf-8').send(STYLESHEET);
  });
  app.get('/assets/refresh.js', (_request, reply) => {
    void reply.header('cache-control', 'public, max-age=300');
    return reply.type('text/javascript; charset=utf-8').send(REFRESH_SCRIPT);
  });

  app.get<{ Querystring: { next?: string } }>('/login', (request, reply) =>
    sendPage(reply, 200, loginPage(BASE, { next: safeBack(request.query.next) })),
  );
  app.post('/login', async (request, reply) => {
    const form = parseForm(request.body);
    const next = safeBack(form.next);
    if (!auth.checkCredentials(form.user ?? '', form.password ?? '')) {
      opts.logger.warn({ user: (form.user ?? '').slice(0, 64) }, 'dashboard: failed login');
      return sendPage(
        reply,
        401,
        loginPage(BASE, { next, error: 'Wrong user or password.', user: form.user ?? '' }),
      );
    }
    opts.logger.info({ user: auth.user }, 'dashboard: login');
    void reply.header(
      'set-cookie',
      cookie(SESSION_COOKIE, auth.issueSession(), {
        maxAgeSeconds: SESSION_TTL_MS / 1000,
        secure: isSecure(request),
      }),
    );
    return reply.code(303).header('location', next).send();
  });

  const principalOf = (request: FastifyRequest): Principal => {
    const p = request.dashboardPrincipal;
    if (!p) throw new Error('dashboard route reached without a principal');
    return p;
  };

  const flashOf = (request: FastifyRequest, reply: FastifyReply): PageContext['flash'] => {
    const raw = readCookie(request.headers.cookie, FLASH_COOKIE);
    if (!raw || request.headers['x-dashboard-refresh']) return undefined;
    void reply.header(
      'set-cookie',
      cookie(FLASH_COOKIE, '', { maxAgeSeconds: 0, secure: isSecure(request) }),
    );
    const kind = raw.startsWith('ok:') ? 'ok' : 'error';
    return { kind, text: raw.slice(raw.indexOf(':') + 1).slice(0, 500) };
  };

  const pageContext = (
    request: FastifyRequest,
    reply: FastifyReply,
    extra: Partial<PageContext> = {},
  ): PageContext => {
    const principal = principalOf(request);
    const flash = flashOf(request, reply);
    return {
      base: BASE,
      user: principal.user,
      via: principal.via,
      readOnly,
      csrf: auth.csrfToken(principal),
      refreshSeconds,
      here: safeBack(request.url),
      now: Date.now(),
      ...(flash ? { flash } : {}),
      ...extra,
    };
  };

  app.post('/logout', (request, reply) => {
    const form = parseForm(request.body);
    if (!auth.checkCsrf(principalOf(request), form._csrf)) {
      return sendPage(
        reply,
        403,
        messagePage(BASE, 'Forbidden', 'Invalid or missing CSRF token: reload the page.'),
      );
    }
    void reply.header(
      'set-cookie',
      cookie(SESSION_COOKIE, '', { maxAgeSeconds: 0, secure: isSecure(request) }),
    );
    return reply.code(303).header('location', `${BASE}/login`).send();
  });

  /** Which of these trade ids are applied (for dead-letter rows). */
  const appliedOf = async (letters: readonly DeadLetterWithReplay[]) => {
    const ids = [...new Set(letters.map((d) => d.tradeId))];
    const out = new Map<string, { seq: number; partitionKey: string }>();
    if (ids.length === 0) return out;
    const rows = await pg('applied trades', () =>
      opts.db
        .selectFrom('trades')
        .select(['trade_id', 'seq', 'partition_key'])
        .where('trade_id', 'in', ids)
        .execute(),
    );
    for (const r of rows) out.set(r.trade_id, { seq: Number(r.seq), partitionKey: r.partition_key });
    return out;
  };

  const haltedRows = async (): Promise<HaltedRow[]> => {
    const halted = (await redis('halted partitions', () => opts.admin.listHalted())).slice(0, 200);
    const pipe = opts.redis.pipeline();
    for (const h of halted) {
      pipe.llen(keys.list(h.partitionKey));
      pipe.lindex(keys.list(h.partitionKey), 0);
    }
    const res = (await redis('halted partitions', () => pipe.exec())) ?? [];
    return halted
      .map((h, i) => {
        const head = res[i * 2 + 1]?.[1] as string | null | undefined;
        return {
          partitionKey: h.partitionKey,
          reason: h.reason,
          queued: Number(res[i * 2]?.[1] ?? 0),
          ...(head ? { head: decodeEntry(head) } : {}),
        };
      })
      .sort((a, b) => (a.reason.at ?? 0) - (b.reason.at ?? 0));
  };

  app.get('/', async (request, reply) => {
    const [signals, leases, halted, oldest, hottest, deadLetters] = await Promise.all([
      redis('signals', () => readSignals(opts.redis, keys)),
      redis('lease counts', () => readLeaseCounts(opts.redis, keys)),
      haltedRows(),
      redis('oldest partitions', () => oldestPartitions(opts.redis, keys, 20)),
      redis('hottest partitions', () => hottestPartitions(opts.redis, keys, 20)),
      pg('dead letters', () => listDeadLetters(opts.db, { limit: 10 })),
    ]);
    const pipe = opts.redis.pipeline();
    for (const o of oldest) pipe.llen(keys.list(o.partitionKey));
    const lens = (await redis('partition lengths', () => pipe.exec())) ?? [];
    return sendPage(
      reply,
      200,
      overviewPage(pageContext(request, reply), {
        signals,
        leases,
        halted,
        oldest: oldest.map((o, i) => ({ ...o, queued: Number(lens[i]?.[1] ?? 0) })),
        hottest,
        deadLetters,
        applied: await appliedOf(deadLetters),
      }),
    );
  });

  app.get<{ Querystring: { key?: string } }>('/partition', async (request, reply) => {
    const pk = String(request.query.key ?? '').slice(0, 300);
    let invalidKey: string | undefined;
    try {
      parsePartitionKey(pk);
    } catch (err) {
      invalidKey = `not a partition key tradefleet builds: ${(err as Error).message}`;
    }
    const [queued, score, haltedRaw, head, position, recent, deadLetters] = await Promise.all([
      redis('partition length', () => opts.redis.llen(keys.list(pk))),
      redis('partition score', () => opts.redis.zscore(keys.pending, pk)),
      redis('halt reason', () => opts.redis.hget(keys.halted, pk)),
      redis('head', () => readHead(opts.redis, keys, pk, 20)),
      pg('position', () => getPosition(opts.db, pk)),
      pg('recent trades', () => recentTrades(opts.db, pk, 10)),
      pg('dead letters', () => listDeadLetters(opts.db, { partitionKey: pk, limit: 50 })),
    ]);
    return sendPage(
      reply,
      200,
      partitionPage(pageContext(request, reply), {
        partitionKey: pk,
        queued,
        pendingSince: score === null ? null : Number(score),
        ...(haltedRaw ? { halted: JSON.parse(haltedRaw) } : {}),
        head,
        ...(position ? { position } : {}),
        recent,
        deadLetters,
        applied: await appliedOf(deadLetters),
        ...(invalidKey ? { invalidKey } : {}),
      }),
    );
  });

  app.get<{ Querystring: { partition?: string; tradeId?: string } }>(
    '/dead-letters',
    async (request, reply) => {
      const partition = (request.query.partition ?? '').trim().slice(0, 300) || undefined;
      const tradeId = (request.query.tradeId ?? '').trim().slice(0, 64) || undefined;
      const rows = await pg('dead letters', () =>
        listDeadLetters(opts.db, {
          ...(partition ? { partitionKey: partition } : {}),
          ...(tradeId ? { tradeId } : {}),
          limit: 200,
        }),
      );
      const ctx = pageContext(request, reply);
      return sendPage(
        reply,
        200,
        deadLettersPage(ctx, rows, await appliedOf(rows), {
          ...(partition ? { partition } : {}),
          ...(tradeId ? { tradeId } : {}),
        }),
      );
    },
  );

  app.get<{ Querystring: { q?: string } }>('/search', async (request, reply) => {
    const q = (request.query.q ?? '').trim().slice(0, 300);
    const ctx = pageContext(request, reply, { q });
    if (q === '') return reply.code(303).header('location', BASE).send();
    let isPartition = true;
    try {
      parsePartitionKey(q);
    } catch {
      isPartition = false;
    }
    const isTrade = TRADE_ID_PATTERN.test(q);
    const [trade, partition] = await Promise.all([
      isTrade
        ? Promise.all([
            redis('trade lookup', () => locateTrade(opts.redis, keys, q)),
            pg('trade lookup', () => getTrade(opts.db, q)),
            pg('dead letters', () => listDeadLetters(opts.db, { tradeId: q, limit: 50 })),
          ])
        : undefined,
      isPartition
        ? Promise.all([
            redis('partition lookup', () =>
              opts.redis.multi().llen(keys.list(q)).hexists(keys.halted, q).hexists(keys.seqs, q).exec(),
            ),
            pg('position', () => getPosition(opts.db, q)),
          ])
        : undefined,
    ]);
    const partitionExists =
      partition !== undefined &&
      (partition[1] !== undefined || (partition[0] ?? []).some(([err, v]) => !err && Number(v) > 0));
    // One clear answer: straight to the partition.
    if (partitionExists && !(trade && (trade[0] || trade[1] || trade[2].length > 0))) {
      return reply
        .code(303)
        .header('location', `${BASE}/partition?${new URLSearchParams({ key: q })}`)
        .send();
    }
    const deadLetters = trade?.[2] ?? [];
    return sendPage(
      reply,
      200,
      searchPage(
        ctx,
        {
          q,
          ...(trade
            ? {
                trade: {
                  tradeId: q,
                  ...(trade[0]?.state === 'queued'
                    ? { queued: { seq: trade[0].seq, partitionKey: trade[0].partitionKey } }
                    : {}),
                  ...(trade[1] ? { applied: trade[1] } : {}),
                  deadLetters,
                },
              }
            : {}),
          ...(isPartition ? { partition: { partitionKey: q, exists: partitionExists } } : {}),
          ...(!isTrade && !isPartition
            ? {
                problem:
                  'Neither a tradeId (letters, digits, . _ : -) nor a partition key (account_book_security).',
              }
            : {}),
        },
        await appliedOf(deadLetters),
      ),
    );
  });

  // ------------------------------------------------------------------ actions

  const action = (
    name: DashboardAction,
    route: string,
    run: (form: Record<string, string>, by: string) => Promise<ActionOutcome>,
  ) => {
    app.post(route, async (request, reply) => {
      const principal = principalOf(request);
      const form = parseForm(request.body);
      const json = !wantsHtml(request) && /application\/json/.test(String(request.headers.accept ?? ''));
      const answer = (status: number, ok: boolean, message: string) => {
        if (json) {
          securityHeaders(reply, false);
          return reply.code(status).type('application/json').send({ ok, message });
        }
        if (status === 403) return sendPage(reply, 403, messagePage(BASE, 'Forbidden', message));
        void reply.header(
          'set-cookie',
          cookie(FLASH_COOKIE, `${ok ? 'ok' : 'error'}:${message.slice(0, 500)}`, {
            maxAgeSeconds: 60,
            secure: isSecure(request),
          }),
        );
        return reply.code(303).header('location', safeBack(form.back)).send();
      };
      if (readOnly) {
        opts.metrics.actions.inc({ action: name, result: 'refused' });
        return answer(403, false, 'The dashboard is read-only (DASHBOARD_READ_ONLY): no action is allowed.');
      }
      // A bearer token is never sent by a browser on its own: no cross-site forgery to guard against.
      if (principal.via !== 'bearer' && !auth.checkCsrf(principal, form._csrf)) {
        opts.metrics.actions.inc({ action: name, result: 'refused' });
        return answer(403, false, 'Invalid or missing CSRF token: reload the page and try again.');
      }
      let outcome: ActionOutcome;
      try {
        outcome = await run(form, principal.user);
      } catch (err) {
        opts.metrics.actions.inc({ action: name, result: 'failed' });
        opts.logger.error({ err, action: name, by: principal.user }, 'dashboard action failed');
        return answer(503, false, `${name.replace('_', ' ')} failed: ${(err as Error).message}`);
      }
      opts.metrics.actions.inc({ action: name, result: outcome.ok ? 'done' : 'refused' });
      return answer(outcome.ok ? 200 : outcome.status, outcome.ok, outcome.message);
    });
  };

  const partitionField = (form: Record<string, string>) => (form.partitionKey ?? '').slice(0, 300);
  const seqField = (form: Record<string, string>) => {
    const n = Number(form.seq);
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  };
  const badSeq: ActionOutcome = { ok: false, status: 422, message: 'seq must be a positive integer' };

  action('resume', '/actions/resume', (f, by) => resumePartition(deps, partitionField(f), by, 'resume'));
  action('retry_head', '/actions/retry-head', (f, by) =>
    resumePartition(deps, partitionField(f), by, 'retry-head'),
  );
  action('halt', '/actions/halt', (f, by) => haltPartition(deps, partitionField(f), by));
  action('skip_head', '/actions/skip-head', async (f, by) => {
    const seq = seqField(f);
    return seq === undefined ? badSeq : skipHead(deps, partitionField(f), seq, by);
  });
  action('replay', '/actions/replay', async (f, by) => {
    const seq = seqField(f);
    return seq === undefined ? badSeq : replayDeadLetter(deps, partitionField(f), seq, by);
  });

  // Any other path under /dashboard (e.g. the /dashboard/queues of older versions): a route of
  // this plugin, so behind the same login, then a 404 page; not the API's 401 or its JSON 404.
  app.all('/*', (request, reply) =>
    sendPage(
      reply,
      404,
      messagePage(BASE, 'Not found', `No dashboard page at ${request.url.split('?')[0]!.slice(0, 200)}.`),
    ),
  );
}
