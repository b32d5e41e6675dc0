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

/** The outcome of {@link TokenVerifier.check}. */
export type AuthResult =
  | { ok: true }
  | { ok: false; reason: 'missing' | 'malformed' | 'invalid'; wwwAuthenticate: string; message: string };

export class TokenVerifier {
  private readonly digests: readonly Buffer[];

  constructor(tokens: readonly string[]) {
    this.digests = tokens.filter((t) => t.length > 0).map(digest);
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
    let match = false;
    for (const d of this.digests) match = timingSafeEqual(presented, d) || match;
    if (match) return { ok: true };
    return {
      ok: false,
      reason: 'invalid',
      wwwAuthenticate: `${challenge}, error="invalid_token"`,
      message: 'the bearer token is not valid',
    };
  }
}
