/**
 * Dashboard access: one user name and password (DASHBOARD_USER,
 * DASHBOARD_PASSWORD), presented either through the login form (which sets a
 * signed session cookie) or as HTTP Basic credentials (scripts, curl); or one
 * of the producer API's bearer tokens (API_TOKENS), for scripts and monitors.
 *
 * - Credentials are compared as SHA-256 digests with timingSafeEqual, user and
 *   password both, with no early exit: the time taken says nothing about which
 *   part or how much of a guess was right.
 * - Sessions are stateless, so any producer replica accepts them: an expiry
 *   and an HMAC-SHA256 under a key derived from the user and password
 *   (changing the password ends every session).
 * - CSRF tokens are an HMAC of the session (or of the Basic principal) under
 *   the same key: a page of another site can neither read nor compute one.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export const SESSION_COOKIE = 'tf_dashboard';
/** How long a login lasts. */
export const SESSION_TTL_MS = 8 * 3600 * 1000;

const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

function equalDigests(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Who is calling: the session (cookie), Basic credentials or an API bearer token. */
export interface Principal {
  /** The dashboard user, or `token:<tokenId>` for a bearer token (never the token). */
  readonly user: string;
  readonly via: 'session' | 'basic' | 'bearer';
  /** What the CSRF token is bound to. */
  readonly binding: string;
}

/** The narrow part of the producer's TokenVerifier the dashboard uses. */
export interface BearerVerifier {
  check(header: string | undefined): { ok: true; id: string } | { ok: false };
}

/**
 * The principal of an `Authorization: Bearer ...` header carrying one of the
 * API tokens. A browser never attaches such a header by itself, so a bearer
 * request cannot be forged by another site: actions need no CSRF token.
 */
export function verifyBearer(
  verifier: BearerVerifier | undefined,
  header: string | undefined,
): Principal | undefined {
  if (verifier === undefined || !/^Bearer /i.test(header ?? '')) return undefined;
  const result = verifier.check(header);
  if (!result.ok) return undefined;
  const user = `token:${result.id}`;
  return { user, via: 'bearer', binding: `bearer\0${user}` };
}

export class DashboardAuth {
  private readonly userDigest: Buffer;
  private readonly passwordDigest: Buffer;
  private readonly key: Buffer;

  constructor(
    readonly user: string,
    password: string,
    private readonly now: () => number = Date.now,
  ) {
    if (password.length === 0) throw new Error('the dashboard needs a password (DASHBOARD_PASSWORD)');
    this.userDigest = sha256(user);
    this.passwordDigest = sha256(password);
    this.key = createHash('sha256')
      .update(`tradefleet-dashboard-session-v1\0${user}\0${password}`, 'utf8')
      .digest();
  }

  /** True when both match; always compares both. */
  checkCredentials(user: string, password: string): boolean {
    const u = equalDigests(sha256(user), this.userDigest);
    const p = equalDigests(sha256(password), this.passwordDigest);
    return u && p;
  }

  private mac(text: string): string {
    return createHmac('sha256', this.key).update(text, 'utf8').digest('base64url');
  }

  /** A new session cookie value for the configured user. */
  issueSession(): string {
    const body = `${Buffer.from(this.user, 'utf8').toString('base64url')}.${this.now() + SESSION_TTL_MS}`;
    return `${body}.${this.mac(`session\0${body}`)}`;
  }

  /** The principal of a session cookie value, or undefined (forged, expired, malformed). */
  verifySession(value: string | undefined): Principal | undefined {
    if (!value) return undefined;
    const parts = value.split('.');
    if (parts.length !== 3) return undefined;
    const [user64, exp, mac] = parts as [string, string, string];
    const expected = Buffer.from(this.mac(`session\0${user64}.${exp}`));
    if (!equalDigests(Buffer.from(mac), expected)) return undefined;
    if (!/^\d+$/.test(exp) || Number(exp) < this.now()) return undefined;
    const user = Buffer.from(user64, 'base64url').toString('utf8');
    return { user, via: 'session', binding: `session\0${value}` };
  }

  /** The principal of an `Authorization: Basic ...` header with the right credentials. */
  verifyBasic(header: string | undefined): Principal | undefined {
    const m = /^Basic +([A-Za-z0-9+/]+=*) *$/i.exec(header ?? '');
    if (!m) return undefined;
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return undefined;
    const user = decoded.slice(0, colon);
    if (!this.checkCredentials(user, decoded.slice(colon + 1))) return undefined;
    return { user, via: 'basic', binding: `basic\0${user}` };
  }

  csrfToken(principal: Principal): string {
    return this.mac(`csrf\0${principal.binding}`);
  }

  checkCsrf(principal: Principal, token: string | undefined): boolean {
    if (!token) return false;
    return equalDigests(Buffer.from(token), Buffer.from(this.csrfToken(principal)));
  }
}

/** The value of one cookie of a Cookie header. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) {
      const v = part.slice(eq + 1).trim();
      try {
        return decodeURIComponent(v);
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/** A Set-Cookie value scoped to the dashboard: HttpOnly, SameSite=Strict, Secure over HTTPS. */
export function cookie(
  name: string,
  value: string,
  opts: { maxAgeSeconds: number; secure: boolean },
): string {
  return [
    `${name}=${encodeURIComponent(value)}`,
    'Path=/dashboard',
    `Max-Age=${Math.max(0, Math.floor(opts.maxAgeSeconds))}`,
    'HttpOnly',
    'SameSite=Strict',
    ...(opts.secure ? ['Secure'] : []),
  ].join('; ');
}
