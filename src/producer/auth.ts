/**
 * Bearer-token authentication of the producer API.
 *
 * Tokens are compared as SHA-256 digests with crypto.timingSafeEqual: equal
 * lengths whatever the token, so neither the comparison time nor an early
 * length check tells an attacker how much of a guess was right. Every
 * configured token is compared on every request (no early exit), so the time
 * does not reveal which one matched either. Tokens are never logged: the
 * logger redacts `authorization` and this module logs nothing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/** The realm announced in `WWW-Authenticate`. */
export const AUTH_REALM = 'tradefleet';

const digest = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();

/**
 * A short, stable name for a token that reveals nothing usable about it: the
 * first 12 hex digits of its SHA-256. Rate limits are keyed by it and logs may
 * carry it (`client`), so operators can tell clients apart without the token.
 */
export function tokenId(token: string): string {
  return digest(token).toString('hex').slice(0, 12);
}

/** The outcome of {@link TokenVerifier.check}. */
export type AuthResult =
  | { ok: true; /** tokenId of the token presented */ id: string }
  | { ok: false; reason: 'missing' | 'malformed' | 'invalid'; wwwAuthenticate: string; message: string };

export class TokenVerifier {
  private readonly digests: readonly Buffer[];
  private readonly ids: readonly string[];

  constructor(tokens: readonly string[]) {
    this.digests = [...new Set(tokens.filter((t) => t.length > 0))].map(digest);
    this.ids = this.digests.map((d) => d.toString('hex').slice(0, 12));
  }

  /** False when no token is configured: authentication is off. */
  get enabled(): boolean {
    return this.digests.length > 0;
  }

  /** Checks an `Authorization` header value. */
  check(header: string | undefined): AuthResult {
    const challenge = `Bearer realm="${AUTH_REALM}"`;
    if (header === undefined || header.trim() === '') {
      return {
        ok: false,
        reason: 'missing',
        wwwAuthenticate: challenge,
        message: 'authentication required: send an "Authorization: Bearer <token>" header',
      };
    }
    const m = /^Bearer[ ]+([A-Za-z0-9\-._~+/]+=*)[ ]*$/i.exec(header);
    if (!m) {
      return {
        ok: false,
        reason: 'malformed',
        wwwAuthenticate: `${challenge}, error="invalid_request"`,
        message: 'the Authorization header must be "Bearer <token>"',
      };
    }
    const presented = digest(m[1]!);
    let match = -1;
    this.digests.forEach((d, i) => {
      if (timingSafeEqual(presented, d)) match = i;
    });
    if (match >= 0) return { ok: true, id: this.ids[match]! };
    return {
      ok: false,
      reason: 'invalid',
      wwwAuthenticate: `${challenge}, error="invalid_token"`,
      message: 'the bearer token is not valid',
    };
  }
}
