/**
 * The dashboard's pure parts: escaping by construction, credentials compared in
 * full, signed sessions that expire and cannot be forged, CSRF tokens bound to
 * the session; the overview's partition counts (and no bull-board link: that
 * view is gone); and the queue entry's optional trace context.
 */
import { cookie, DashboardAuth, readCookie, SESSION_TTL_MS } from '../../src/dashboard/auth';
import { escapeHtml, formatAge, html, query } from '../../src/dashboard/html';
import { overviewPage, type PageContext } from '../../src/dashboard/views';
import { decodeEntry, encodeBody } from '../../src/queue/codec';
import { formatTraceparent, parseTraceparent } from '../../src/observability/tracing';

describe('html', () => {
  it('escapes every interpolated value, nested templates stay markup', () => {
    const evil = `<script>alert("x")</script>' onload=x \``;
    const out = html`<td title="${evil}">${evil}${html`<b>${'&'}</b>`}</td>`.value;
    expect(out).toBe(
      '<td title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; onload=x &#96;">' +
        '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; onload=x &#96;<b>&amp;</b></td>',
    );
    expect(html`${[1, '<', null, undefined, false]}`.value).toBe('1&lt;');
    expect(escapeHtml('a&b')).toBe('a&amp;b');
    expect(query({ key: 'A_B/C#D', x: undefined })).toBe('?key=A_B%2FC%23D');
    expect(formatAge(3_723_000)).toBe('1 h 2 min');
  });
});

describe('DashboardAuth', () => {
  let now = 1_000_000;
  const auth = new DashboardAuth('ops', 'correct horse battery', () => now);

  it('checks user and password together', () => {
    expect(auth.checkCredentials('ops', 'correct horse battery')).toBe(true);
    expect(auth.checkCredentials('ops', 'correct horse batterY')).toBe(false);
    expect(auth.checkCredentials('Ops', 'correct horse battery')).toBe(false);
    expect(auth.checkCredentials('', '')).toBe(false);
    expect(() => new DashboardAuth('ops', '')).toThrow(/DASHBOARD_PASSWORD/);
  });

  it('Basic credentials', () => {
    const b = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;
    expect(auth.verifyBasic(b('ops:correct horse battery'))?.user).toBe('ops');
    expect(auth.verifyBasic(b('ops:nope'))).toBeUndefined();
    expect(auth.verifyBasic(b('no-colon'))).toBeUndefined();
    expect(auth.verifyBasic('Bearer x')).toBeUndefined();
    expect(auth.verifyBasic(undefined)).toBeUndefined();
  });

  it('sessions verify until they expire, and any change to them is refused', () => {
    now = 1_000_000;
    const s = auth.issueSession();
    expect(auth.verifySession(s)).toMatchObject({ user: 'ops', via: 'session' });
    const [u, exp, mac] = s.split('.') as [string, string, string];
    expect(auth.verifySession(`${u}.${Number(exp) + 1}.${mac}`)).toBeUndefined();
    expect(auth.verifySession(`${Buffer.from('root').toString('base64url')}.${exp}.${mac}`)).toBeUndefined();
    expect(auth.verifySession(`${u}.${exp}.${mac.slice(0, -1)}A`)).toBeUndefined();
    expect(auth.verifySession('garbage')).toBeUndefined();
    // Another password (a rotated one) signs differently.
    expect(new DashboardAuth('ops', 'another password!!', () => now).verifySession(s)).toBeUndefined();
    now += SESSION_TTL_MS + 1;
    expect(auth.verifySession(s)).toBeUndefined();
  });

  it('CSRF tokens are bound to the session', () => {
    now = 1_000_000;
    const a = auth.verifySession(auth.issueSession())!;
    now += 1;
    const b = auth.verifySession(auth.issueSession())!;
    expect(auth.checkCsrf(a, auth.csrfToken(a))).toBe(true);
    expect(auth.checkCsrf(a, auth.csrfToken(b))).toBe(false);
    expect(auth.checkCsrf(a, undefined)).toBe(false);
    expect(auth.checkCsrf(a, '')).toBe(false);
  });

  it('cookies: scoped, HttpOnly, SameSite=Strict, Secure over HTTPS; read back', () => {
    expect(cookie('tf', 'a b;c', { maxAgeSeconds: 60, secure: true })).toBe(
      'tf=a%20b%3Bc; Path=/dashboard; Max-Age=60; HttpOnly; SameSite=Strict; Secure',
    );
    expect(readCookie('x=1; tf=a%20b%3Bc; y=2', 'tf')).toBe('a b;c');
    expect(readCookie('x=1', 'tf')).toBeUndefined();
  });
});

describe('overview page', () => {
  const ctx: PageContext = {
    base: '/dashboard',
    user: 'ops',
    via: 'session',
    readOnly: false,
    csrf: 'csrf',
    refreshSeconds: 5,
    here: '/dashboard',
    now: 1_700_000_000_000,
  };
  const page = (leases: { ready: number; leased: number; retrying: number; expired: number }) =>
    overviewPage(ctx, {
      signals: {
        pendingPartitions: 9,
        backlog: 40,
        oldestEnqueuedAt: null,
        oldestAgeMs: 0,
        haltedPartitions: 0,
      },
      leases,
      halted: [],
      oldest: [],
      hottest: { partitions: [], complete: true },
      deadLetters: [],
      applied: new Map(),
    });

  it('shows partitions ready / leased / retrying / with an expired lease; no tokens, no bull-board', () => {
    const out = page({ ready: 4, leased: 3, retrying: 2, expired: 1 });
    expect(out).toMatch(/<span id="partitions-ready">4<\/span> \/\s*<span id="partitions-leased">3<\/span>/);
    expect(out).toMatch(
      /<span id="partitions-retrying">2<\/span> \/\s*<span id="partitions-expired">1<\/span>/,
    );
    expect(out).toContain('partitions ready / leased');
    expect(out).toContain('partitions retrying / with an expired lease');
    // An expired lease (a worker died or froze) is flagged.
    expect(out).toMatch(/class="card alert">\s*<div class="value"><span id="partitions-retrying">/);
    expect(page({ ready: 0, leased: 0, retrying: 0, expired: 0 })).not.toContain('card alert');
    expect(out).not.toMatch(/bull-board|drain token|\/dashboard\/queues/i);
  });
});

describe('queue entries with trace context', () => {
  const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

  it('the trace context sits between tradeId and body; the body is untouched', () => {
    const body = '{"tradeId":"T-1","note":"a|b"}';
    expect(decodeEntry(`7|1700000000000|T-1|${encodeBody(body, tp)}`)).toEqual({
      seq: 7,
      enqueuedAt: 1_700_000_000_000,
      tradeId: 'T-1',
      body,
      traceparent: tp,
    });
    // Without it (every entry before tracing existed): as before.
    expect(decodeEntry(`7|1700000000000|T-1|${encodeBody(body, undefined)}`)).toEqual({
      seq: 7,
      enqueuedAt: 1_700_000_000_000,
      tradeId: 'T-1',
      body,
    });
    // Not a valid traceparent: nothing is stored, and a body starting with "~" stays body.
    expect(encodeBody(body, 'junk')).toBe(body);
    expect(decodeEntry('1|2|T|~junk|{}')).toEqual({ seq: 1, enqueuedAt: 2, tradeId: 'T', body: '~junk|{}' });
  });

  it('traceparent parses and formats (W3C version 00); invalid ones are refused', () => {
    const sc = parseTraceparent(tp)!;
    expect(sc).toMatchObject({
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      traceFlags: 1,
    });
    expect(formatTraceparent(sc)).toBe(tp);
    expect(parseTraceparent(`00-${'0'.repeat(32)}-b7ad6b7169203331-01`)).toBeUndefined();
    expect(parseTraceparent('01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01')).toBeUndefined();
    expect(parseTraceparent(undefined)).toBeUndefined();
  });
});
