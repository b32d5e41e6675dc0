/**
 * The producer API's error catalogue: every error a client can receive, with a
 * stable code, its HTTP status and what to do about it.
 *
 * Clients switch on `error.code`, never on the message, so a code is part of
 * the API contract: add codes, never rename or repurpose one. docs/errors.md is
 * generated from this catalogue (`npx tsx src/producer/errors-doc.ts --write`)
 * and a unit test fails when the two differ.
 */

/** One entry of {@link ERROR_CATALOGUE}. */
export interface ErrorSpec {
  readonly status: number;
  /** What happened and what the client should do; rendered into docs/errors.md. */
  readonly description: string;
  /** Sent as the `Retry-After` header (seconds) when set: the request may be retried unchanged. */
  readonly retryAfterSeconds?: number;
}

export const ERROR_CATALOGUE = {
  validation_failed: {
    status: 400,
    description:
      'The body (a trade, or the batch envelope) does not match the schema. `details` lists every problem, each with the field (`path`), a field-level code (`required`, `type`, `pattern`, `enum`, `decimal`, `range`, `forbidden`, `unknown_field`, `self_reference`) and a message naming the value received and the fix. Nothing was enqueued.',
  },
  invalid_parameter: {
    status: 400,
    description:
      'A path parameter (`tradeId`, `accountId`, `bookId`, `securityId`) is not in the accepted format; `details` names it. Percent-encode `/`, `#` and other reserved characters in path segments.',
  },
  malformed_json: {
    status: 400,
    description:
      'The body is not valid JSON (or is empty). `details` gives the parser position. Nothing was enqueued.',
  },
  bad_request: {
    status: 400,
    description:
      'The HTTP request itself is malformed (e.g. a Content-Length that does not match the body, an invalid URL encoding). Fix the client.',
  },
  unauthorized: {
    status: 401,
    description:
      'Bearer-token authentication is enabled and the request carries no `Authorization: Bearer <token>` header, or the token is not one of the configured tokens. The response has a `WWW-Authenticate` header. `/healthz` and `/readyz` never require a token.',
  },
  route_not_found: {
    status: 404,
    description:
      'No route matches the method and path (an unknown path, or a method the path does not accept).',
  },
  trade_not_found: {
    status: 404,
    description:
      'No trade with this id is queued in Redis, applied in PostgreSQL or dead-lettered. It was never accepted, or it was accepted under another namespace or database.',
  },
  position_not_found: {
    status: 404,
    description:
      'No position exists for this account, book and security: no trade of the partition has been applied yet.',
  },
  conflict: {
    status: 409,
    description:
      'A trade with this `tradeId` was already accepted with a different payload. Resend exactly the original payload (an idempotent retry answers 200 with `duplicate: true`), or use a new `tradeId`. Nothing was enqueued.',
  },
  body_too_large: {
    status: 413,
    description:
      'The body is larger than BODY_LIMIT_BYTES. Send fewer trades per request. Nothing was enqueued.',
  },
  batch_too_large: {
    status: 413,
    description:
      'A batch carries more trades than BATCH_MAX_TRADES. Split it into batches of at most that many trades. Nothing was enqueued.',
  },
  unsupported_media_type: {
    status: 415,
    description:
      'POST bodies must be sent with `Content-Type: application/json` (optionally `; charset=utf-8`). Nothing was enqueued.',
  },
  backlog_full: {
    status: 429,
    description:
      'Backpressure: accepting the request would take the number of unapplied trades past MAX_BACKLOG. Nothing was enqueued (a batch is refused as a whole). Retry after `Retry-After` seconds, with backoff.',
    retryAfterSeconds: 5,
  },
  rate_limited: {
    status: 429,
    description:
      'This client (its bearer token, or its IP address when authentication is off) has submitted more than RATE_LIMIT_PER_SECOND trades per second, beyond a burst of RATE_LIMIT_BURST, to this producer replica. A single trade counts 1, a batch its number of trades, any other /v1 request 1. Nothing was enqueued. Retry after the `Retry-After` seconds of the response (computed for this client; the value below is the least).',
    retryAfterSeconds: 1,
  },
  internal_error: {
    status: 500,
    description:
      'An unexpected error in the producer; it is logged with the request id. Whether anything was enqueued is unknown: retry with the same payload (retries of the same trade are idempotent).',
  },
  redis_unavailable: {
    status: 503,
    description:
      'Redis is unreachable or did not answer in time. Whether a trade of this request was enqueued is unknown: retry with the same payload after `Retry-After` seconds; a repeat of an accepted trade answers 200 with `duplicate: true`.',
    retryAfterSeconds: 2,
  },
  database_unavailable: {
    status: 503,
    description:
      'PostgreSQL is unreachable or did not answer in time (read routes only; enqueueing does not need PostgreSQL). Retry after `Retry-After` seconds.',
    retryAfterSeconds: 2,
  },
  not_ready: {
    status: 503,
    description:
      '`GET /readyz` only: a dependency is down; `details` names each one (`redis`, `postgres`) with the reason.',
    retryAfterSeconds: 2,
  },
  overloaded: {
    status: 503,
    description:
      'This producer replica is already working on MAX_INFLIGHT_REQUESTS requests; the request was refused before its body was read. Nothing was enqueued. Retry after `Retry-After` seconds, with backoff (another replica may answer sooner).',
    retryAfterSeconds: 1,
  },
  shutting_down: {
    status: 503,
    description:
      'The producer is shutting down and takes no new requests; retry (another replica will answer). Nothing was enqueued.',
    retryAfterSeconds: 1,
  },
} as const satisfies Record<string, ErrorSpec>;

/** A stable error code of the producer API. */
export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** Every code, in catalogue order. */
export const ERROR_CODES = Object.keys(ERROR_CATALOGUE) as ErrorCode[];

/**
 * One item of `error.details`: which field or input (`path`: a body field such
 * as `quantity`, `trades`, a path parameter, `content-type`, or '' for the
 * whole body), a field-level code and a message with the fix.
 */
export interface ErrorDetail {
  readonly path: string;
  readonly code: string;
  readonly message: string;
}

/** The body of every error response. */
export interface ErrorBody {
  error: {
    code: ErrorCode;
    message: string;
    details?: ErrorDetail[];
  };
}

/** An error the producer answers with its catalogued status and shape. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly status: number;
  readonly retryAfterSeconds: number | undefined;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: readonly ErrorDetail[],
    /** `retryAfterSeconds` replaces the catalogue's value for this one response (e.g. a rate limit's wait). */
    options?: { cause?: unknown; retryAfterSeconds?: number },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    const spec: ErrorSpec = ERROR_CATALOGUE[code];
    this.status = spec.status;
    this.retryAfterSeconds = options?.retryAfterSeconds ?? spec.retryAfterSeconds;
  }

  toBody(): ErrorBody {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.details && this.details.length > 0 ? { details: [...this.details] } : {}),
      },
    };
  }
}

/** Builds the body of an error response without an ApiError (e.g. a batch item's error). */
export function errorBody(code: ErrorCode, message: string, details?: readonly ErrorDetail[]): ErrorBody {
  return new ApiError(code, message, details).toBody();
}

const PROGRAMMING_ERRORS = [TypeError, RangeError, ReferenceError, SyntaxError];

function isProgrammingError(err: unknown): boolean {
  return PROGRAMMING_ERRORS.some((E) => err instanceof E);
}

/**
 * Error-like rather than `instanceof Error`: errors raised by Node's own
 * modules (a refused socket) come from another realm under some runners, and
 * drivers sometimes reject with plain objects carrying a message.
 */
function isErrorLike(err: unknown): err is { name?: unknown; message: string; code?: unknown } {
  return (
    typeof err === 'object' && err !== null && typeof (err as { message?: unknown }).message === 'string'
  );
}

/**
 * Redis replies that mean "not now" rather than "your command is wrong": the
 * server is loading, busy, read-only, out of memory, or the cluster is moving.
 */
const TRANSIENT_REPLY = /^(LOADING|BUSY|READONLY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|OOM|NOREPLICAS|MISCONF)\b/;

/**
 * Whether an error thrown by an ioredis call (the queue's scripts) means Redis is
 * unavailable: connection refused or closed, offline queue disabled, command
 * timeout, retries exhausted, or a transient server reply. A script error or
 * a bug in our code is not, and must not be answered with a retryable 503.
 */
export function isRedisUnavailable(err: unknown): boolean {
  if (!isErrorLike(err) || isProgrammingError(err)) return false;
  if (err.name === 'ReplyError') return TRANSIENT_REPLY.test(err.message);
  return true;
}

/** SQLSTATE classes that mean the server or the connection failed, not the statement. */
const UNAVAILABLE_SQLSTATE = /^(08|53|57|58)/;

/**
 * Whether an error thrown by a pg/kysely call means PostgreSQL is unavailable
 * (connection refused, terminated, timed out, too many connections, shutting
 * down), as opposed to a bad statement, which is a bug.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (!isErrorLike(err) || isProgrammingError(err)) return false;
  const code = err.code;
  // pg's DatabaseError carries a 5-character SQLSTATE; node errors carry E* codes.
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return UNAVAILABLE_SQLSTATE.test(code);
  return true;
}

/** Raised by {@link withTimeout}; counts as "unavailable" for both classifiers. */
export class DependencyTimeoutError extends Error {
  override readonly name = 'DependencyTimeoutError';
  constructor(
    readonly what: string,
    readonly ms: number,
  ) {
    super(`${what} did not answer within ${ms} ms`);
  }
}

/**
 * Rejects with {@link DependencyTimeoutError} when `promise` takes longer than
 * `ms`, so that no request waits on a dependency for ever. The operation
 * itself is not cancelled; its late result is ignored.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DependencyTimeoutError(what, ms)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The message of an error (of any realm), or its string form. */
export function describeError(err: unknown): string {
  return isErrorLike(err) ? err.message : String(err);
}

/**
 * Runs a Redis operation and turns "Redis is unavailable" into an ApiError
 * `redis_unavailable` (503, Retry-After). Anything else propagates unchanged.
 */
export async function redisCall<T>(what: string, fn: () => Promise<T>, timeoutMs: number): Promise<T> {
  try {
    return await withTimeout(fn(), timeoutMs, `Redis (${what})`);
  } catch (err) {
    if (err instanceof ApiError || !isRedisUnavailable(err)) throw err;
    throw new ApiError(
      'redis_unavailable',
      `Redis is unavailable (${what}: ${describeError(err)}); retry later`,
      undefined,
      {
        cause: err,
      },
    );
  }
}

/** Like {@link redisCall}, for PostgreSQL: `database_unavailable` (503, Retry-After). */
export async function dbCall<T>(what: string, fn: () => Promise<T>, timeoutMs: number): Promise<T> {
  try {
    return await withTimeout(fn(), timeoutMs, `PostgreSQL (${what})`);
  } catch (err) {
    if (err instanceof ApiError || !isDatabaseUnavailable(err)) throw err;
    throw new ApiError(
      'database_unavailable',
      `PostgreSQL is unavailable (${what}: ${describeError(err)}); retry later`,
      undefined,
      { cause: err },
    );
  }
}

// ---------------------------------------------------------------------------
// docs/errors.md

/** The heading line that starts the generated part of docs/errors.md. */
export const ERRORS_DOC_TITLE = '# Producer API errors';

/** docs/errors.md, generated from {@link ERROR_CATALOGUE} (already in Prettier's markdown style). */
export function renderErrorsDoc(): string {
  const lines = [
    ERRORS_DOC_TITLE,
    '',
    '<!-- Generated from src/producer/errors.ts by `npx tsx src/producer/errors-doc.ts --write`; do not edit. -->',
    '',
    'Every error response of the producer API has one shape:',
    '',
    '```json',
    '{',
    '  "error": {',
    '    "code": "validation_failed",',
    '    "message": "invalid trade: 1 problem: quantity (decimal)",',
    '    "details": [{ "path": "quantity", "code": "decimal", "message": "quantity must be …" }]',
    '  }',
    '}',
    '```',
    '',
    '`code` is stable: switch on it, never on `message`. `details` is present when the',
    "problem can be pinned to fields or inputs; `path` names the field (`''` is the whole body).",
    'Codes with a Retry-After value are sent with a `Retry-After` header (seconds) and may be',
    'retried unchanged; retrying a trade is always safe, because an accepted trade sent again',
    'answers 200 with `duplicate: true`.',
    '',
    'In `POST /v1/trades/batch`, an item that is invalid or conflicts gets its own `error`',
    '(`validation_failed` or `conflict`, same shape) inside its result, and the other items',
    'are still accepted.',
    '',
    '| Code | HTTP status | Retry-After |',
    '| ---- | ----------- | ----------- |',
  ];
  const codeWidth = Math.max(4, ...ERROR_CODES.map((c) => c.length + 2));
  lines[lines.length - 2] = `| ${'Code'.padEnd(codeWidth)} | HTTP status | Retry-After |`;
  lines[lines.length - 1] = `| ${'-'.repeat(codeWidth)} | ----------- | ----------- |`;
  for (const code of ERROR_CODES) {
    const spec: ErrorSpec = ERROR_CATALOGUE[code];
    const retry = spec.retryAfterSeconds === undefined ? '' : `${spec.retryAfterSeconds} s`;
    lines.push(
      `| ${`\`${code}\``.padEnd(codeWidth)} | ${String(spec.status).padEnd(11)} | ${retry.padEnd(11)} |`,
    );
  }
  for (const code of ERROR_CODES) {
    const spec: ErrorSpec = ERROR_CATALOGUE[code];
    const retry = spec.retryAfterSeconds === undefined ? '' : `, \`Retry-After: ${spec.retryAfterSeconds}\``;
    lines.push('', `## \`${code}\``, '', `HTTP ${spec.status}${retry}.`, '', spec.description);
  }
  lines.push('');
  return lines.join('\n');
}
