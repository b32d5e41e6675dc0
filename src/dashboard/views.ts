/**
 * The dashboard's pages: pure functions from data to HTML (every value is
 * escaped by the `html` tag), so they are rendered the same in tests.
 */
import type { DeadLetterWithReplay, PositionRecord, TradeRecord } from '../db';
import type { HaltReason } from '../queue/admin';
import type { QueuedItem } from '../queue/codec';
import type { LeaseCounts, QueueSignals } from '../queue/signals';
import { formatAge, formatTime, html, query, type SafeHtml } from './html';

/** What every page knows about the request. */
export interface PageContext {
  readonly base: string;
  readonly user: string;
  readonly via: 'session' | 'basic' | 'bearer';
  readonly readOnly: boolean;
  readonly csrf: string;
  /** Seconds between refreshes; 0 = none. */
  readonly refreshSeconds: number;
  readonly flash?: { readonly kind: 'ok' | 'error'; readonly text: string };
  /** The URL of this page (for the forms' `back`). */
  readonly here: string;
  readonly q?: string;
  readonly now: number;
}

export function layout(
  ctx: PageContext,
  title: string,
  body: SafeHtml,
  opts: { refresh?: boolean } = {},
): string {
  const refresh = opts.refresh === false ? 0 : ctx.refreshSeconds;
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${title} · tradefleet</title>
        <link rel="stylesheet" href="${ctx.base}/assets/dashboard.css" />
        <script src="${ctx.base}/assets/refresh.js" defer></script>
        ${refresh > 0 ? html`<noscript><meta http-equiv="refresh" content="${refresh}" /></noscript>` : ''}
      </head>
      <body data-refresh="${refresh}">
        <header>
          <a class="brand" href="${ctx.base}">tradefleet</a>
          <nav>
            <a href="${ctx.base}">Overview</a>
            <a href="${ctx.base}/dead-letters">Dead letters</a>
          </nav>
          <form class="search" action="${ctx.base}/search" method="get" role="search">
            <input
              name="q"
              value="${ctx.q ?? ''}"
              placeholder="tradeId or partition key"
              aria-label="tradeId or partition key"
              maxlength="300"
            />
            <button type="submit">Search</button>
          </form>
          <span class="who"
            >${ctx.user}${ctx.readOnly ? html` <span class="badge">read-only</span>` : ''}</span
          >
          ${
            ctx.via === 'session'
              ? html`<form method="post" action="${ctx.base}/logout" class="inline">
                  <input type="hidden" name="_csrf" value="${ctx.csrf}" /><button type="submit" class="link">
                    Log out
                  </button>
                </form>`
              : ''
          }
        </header>
        ${
          refresh > 0
            ? html`<div class="refresh-bar">
                <label
                  ><input type="checkbox" id="refresh-toggle" checked /> refresh every ${refresh} s</label
                >
                <span id="refreshed-at">rendered ${formatTime(ctx.now)}</span>
              </div>`
            : ''
        }
        ${ctx.flash ? html`<p class="flash ${ctx.flash.kind}" role="status">${ctx.flash.text}</p>` : ''}
        <main id="main">
          <h1>${title}</h1>
          ${body}
        </main>
      </body>
    </html> `.value;
}

export function loginPage(base: string, opts: { next: string; error?: string; user?: string }): string {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>Log in · tradefleet</title>
        <link rel="stylesheet" href="${base}/assets/dashboard.css" />
      </head>
      <body class="login">
        <main>
          <h1>tradefleet dashboard</h1>
          ${opts.error ? html`<p class="flash error" role="alert">${opts.error}</p>` : ''}
          <form method="post" action="${base}/login">
            <input type="hidden" name="next" value="${opts.next}" />
            <label
              >User <input name="user" autocomplete="username" required value="${opts.user ?? ''}"
            /></label>
            <label
              >Password <input name="password" type="password" autocomplete="current-password" required
            /></label>
            <button type="submit">Log in</button>
          </form>
        </main>
      </body>
    </html> `.value;
}

export function messagePage(base: string, title: string, message: string): string {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <title>${title} · tradefleet</title>
        <link rel="stylesheet" href="${base}/assets/dashboard.css" />
      </head>
      <body>
        <main>
          <h1>${title}</h1>
          <p>${message}</p>
          <p><a href="${base}">Back to the dashboard</a></p>
        </main>
      </body>
    </html> `.value;
}

const partitionLink = (ctx: PageContext, pk: string) =>
  html`<a class="pk" href="${ctx.base}/partition${query({ key: pk })}">${pk}</a>`;

/** A POST form with the CSRF token; nothing in read-only mode. */
function actionForm(
  ctx: PageContext,
  action: string,
  label: string,
  fields: Record<string, string | number>,
  opts: { confirm?: string; danger?: boolean } = {},
): SafeHtml {
  if (ctx.readOnly) return html``;
  return html`<form
    method="post"
    action="${ctx.base}/actions/${action}"
    class="inline"
    ${opts.confirm ? html` data-confirm="${opts.confirm}"` : ''}
  >
    <input type="hidden" name="_csrf" value="${ctx.csrf}" />
    <input type="hidden" name="back" value="${ctx.here}" />
    ${Object.entries(fields).map(([k, v]) => html`<input type="hidden" name="${k}" value="${String(v)}" />`)}
    <button type="submit" class="${opts.danger ? 'danger' : ''}" data-action="${action}">${label}</button>
  </form>`;
}

function signalCards(s: QueueSignals, leases: LeaseCounts): SafeHtml {
  const card = (label: string, value: string | SafeHtml, cls = '') =>
    html`<div class="card ${cls}">
      <div class="value">${value}</div>
      <div class="label">${label}</div>
    </div>`;
  return html`<section class="cards">
    ${card('unapplied trades (backlog)', String(s.backlog))}
    ${card('pending partitions', String(s.pendingPartitions))}
    ${card('oldest waiting', formatAge(s.oldestAgeMs))}
    ${card('halted partitions', String(s.haltedPartitions), s.haltedPartitions > 0 ? 'alert' : '')}
    ${card(
      'partitions ready / leased',
      html`<span id="partitions-ready">${leases.ready}</span> /
        <span id="partitions-leased">${leases.leased}</span>`,
    )}
    ${card(
      'partitions retrying / with an expired lease',
      html`<span id="partitions-retrying">${leases.retrying}</span> /
        <span id="partitions-expired">${leases.expired}</span>`,
      leases.expired > 0 ? 'alert' : '',
    )}
  </section>`;
}

export interface HaltedRow {
  readonly partitionKey: string;
  readonly reason: HaltReason;
  readonly queued: number;
  readonly head?: QueuedItem;
}

function haltedTable(ctx: PageContext, rows: readonly HaltedRow[]): SafeHtml {
  if (rows.length === 0) return html`<p class="empty">No halted partition.</p>`;
  return html`<table class="halted">
    <thead>
      <tr>
        <th>Partition</th>
        <th>Reason</th>
        <th>Halted</th>
        <th>Queued</th>
        <th>Head</th>
        <th>Actions</th>
      </tr>
    </thead>
    <tbody>
      ${rows.map(
        (r) =>
          html`<tr data-partition="${r.partitionKey}">
            <td>${partitionLink(ctx, r.partitionKey)}</td>
            <td>
              <code>${r.reason.code}</code>
              ${r.reason.message}${r.reason.tradeId ? html` <span class="muted">(trade ${r.reason.tradeId}, seq ${r.reason.seq ?? '?'})</span>` : ''}
            </td>
            <td>
              ${r.reason.at ? formatTime(r.reason.at) : ''}${r.reason.by ? html` <span class="muted">by ${r.reason.by}</span>` : ''}
            </td>
            <td class="num">${r.queued}</td>
            <td>
              ${r.head ? html`seq ${r.head.seq} · ${r.head.tradeId}` : html`<span class="muted">empty</span>`}
            </td>
            <td class="actions">
              ${actionForm(ctx, 'resume', 'Resume', { partitionKey: r.partitionKey })}
              ${actionForm(ctx, 'retry-head', 'Retry head', { partitionKey: r.partitionKey })}
              ${
                r.head
                  ? actionForm(
                      ctx,
                      'skip-head',
                      `Skip head (seq ${r.head.seq})`,
                      { partitionKey: r.partitionKey, seq: r.head.seq },
                      {
                        confirm: `Skip trade ${r.head.tradeId} (seq ${r.head.seq}) of ${r.partitionKey}? It is recorded as a dead letter.`,
                        danger: true,
                      },
                    )
                  : ''
              }
            </td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

function deadLetterTable(
  ctx: PageContext,
  rows: readonly DeadLetterWithReplay[],
  applied: ReadonlyMap<string, { seq: number; partitionKey: string }>,
): SafeHtml {
  if (rows.length === 0) return html`<p class="empty">No dead letter.</p>`;
  return html`<table class="dead-letters">
    <thead>
      <tr>
        <th>Trade</th>
        <th>Partition · seq</th>
        <th>Reason</th>
        <th>Dead-lettered</th>
        <th>Replay</th>
      </tr>
    </thead>
    <tbody>
      ${rows.map((d) => {
        const now = applied.get(d.tradeId);
        const replay = d.lastReplay
          ? html`replayed by ${d.lastReplay.requestedBy} at
            ${formatTime(d.lastReplay.requestedAt)}${
              d.lastReplay.enqueuedSeq !== null
                ? html` as seq ${d.lastReplay.enqueuedSeq}`
                : html` <span class="muted">(not enqueued)</span>`
            }${d.replays > 1 ? html` <span class="muted">(${d.replays} replays)</span>` : ''}`
          : html`<span class="muted">not replayed</span>`;
        return html`<tr data-trade="${d.tradeId}">
          <td><a href="${ctx.base}/search${query({ q: d.tradeId })}">${d.tradeId}</a></td>
          <td>${partitionLink(ctx, d.partitionKey)} · ${d.seq}</td>
          <td><code>${d.reasonCode}</code> ${d.reason}</td>
          <td>${formatTime(d.createdAt)}</td>
          <td>
            ${replay}${now ? html` <span class="ok">→ applied (seq ${now.seq})</span>` : ''}
            ${now ? '' : actionForm(ctx, 'replay', 'Replay', { partitionKey: d.partitionKey, seq: d.seq }, { confirm: `Re-enqueue trade ${d.tradeId} at the tail of ${d.partitionKey}?` })}
          </td>
        </tr>`;
      })}
    </tbody>
  </table>`;
}

export interface OverviewData {
  readonly signals: QueueSignals;
  readonly leases: LeaseCounts;
  readonly halted: readonly HaltedRow[];
  readonly oldest: readonly { partitionKey: string; headEnqueuedAt: number; queued: number }[];
  readonly hottest: {
    partitions: readonly { partitionKey: string; queued: number; halted: boolean }[];
    complete: boolean;
  };
  readonly deadLetters: readonly DeadLetterWithReplay[];
  readonly applied: ReadonlyMap<string, { seq: number; partitionKey: string }>;
}

export function overviewPage(ctx: PageContext, d: OverviewData): string {
  return layout(
    ctx,
    'Queue overview',
    html`${signalCards(d.signals, d.leases)}
      <section id="halted">
        <h2>Halted partitions</h2>
        ${haltedTable(ctx, d.halted)}
      </section>
      <div class="columns">
        <section id="oldest">
          <h2>Pending partitions, oldest waiting first</h2>
          ${
            d.oldest.length === 0
              ? html`<p class="empty">Nothing waiting.</p>`
              : html`<table>
                  <thead>
                    <tr>
                      <th>Partition</th>
                      <th>Waiting</th>
                      <th>Queued</th>
                    </tr>
                  </thead>
                  <tbody>
                    ${d.oldest.map(
                      (o) =>
                        html`<tr>
                          <td>${partitionLink(ctx, o.partitionKey)}</td>
                          <td>${formatAge(ctx.now - o.headEnqueuedAt)}</td>
                          <td class="num">${o.queued}</td>
                        </tr>`,
                    )}
                  </tbody>
                </table>`
          }
        </section>
        <section id="hottest">
          <h2>Hottest partitions by backlog</h2>
          ${
            d.hottest.partitions.length === 0
              ? html`<p class="empty">No backlog.</p>`
              : html`<table>
                    <thead>
                      <tr>
                        <th>Partition</th>
                        <th>Queued</th>
                        <th></th>
                      </tr>
                    </thead>
                    <tbody>
                      ${d.hottest.partitions.map(
                        (h) =>
                          html`<tr>
                            <td>${partitionLink(ctx, h.partitionKey)}</td>
                            <td class="num">${h.queued}</td>
                            <td>${h.halted ? html`<span class="badge alert">halted</span>` : ''}</td>
                          </tr>`,
                      )}
                    </tbody>
                  </table>
                  ${d.hottest.complete ? '' : html`<p class="muted">A sample: more partitions are pending than one look covers.</p>`}`
          }
        </section>
      </div>
      <section id="dead-letters">
        <h2>Recent dead letters</h2>
        ${deadLetterTable(ctx, d.deadLetters, d.applied)}
        <p><a href="${ctx.base}/dead-letters">All dead letters</a></p>
      </section>`,
  );
}

export interface PartitionData {
  readonly partitionKey: string;
  readonly queued: number;
  readonly pendingSince: number | null;
  readonly halted?: HaltReason;
  readonly head: readonly QueuedItem[];
  readonly position?: PositionRecord;
  readonly recent: readonly TradeRecord[];
  readonly deadLetters: readonly DeadLetterWithReplay[];
  readonly applied: ReadonlyMap<string, { seq: number; partitionKey: string }>;
  readonly invalidKey?: string;
}

export function partitionPage(ctx: PageContext, d: PartitionData): string {
  const p = d.position;
  const state = d.halted
    ? html`<span class="badge alert">halted</span> <code>${d.halted.code}</code> ${d.halted.message}`
    : d.queued > 0
      ? html`<span class="badge">pending</span> waiting
          ${d.pendingSince !== null ? formatAge(ctx.now - d.pendingSince) : '?'}`
      : html`<span class="badge ok">idle</span>`;
  const firstQueuedSeq = d.head[0]?.seq;
  return layout(
    ctx,
    `Partition ${d.partitionKey}`,
    html`${d.invalidKey ? html`<p class="flash error">${d.invalidKey}</p>` : ''}
      <dl class="facts">
        <dt>State</dt>
        <dd id="partition-state">${state}</dd>
        <dt>Queued (unapplied)</dt>
        <dd id="partition-queued">${d.queued}</dd>
        <dt>Position in the queue</dt>
        <dd>
          ${
            p
              ? html`last applied seq
                  <strong id="last-seq">${p.lastSeq}</strong
                  >${firstQueuedSeq !== undefined ? html`, next queued seq ${firstQueuedSeq}` : ''}`
              : html`no trade applied
                yet${firstQueuedSeq !== undefined ? html`, next queued seq ${firstQueuedSeq}` : ''}`
          }
        </dd>
      </dl>
      ${
        d.halted
          ? html`<section>
              <h2>Operator actions</h2>
              ${haltedTable(ctx, [
                {
                  partitionKey: d.partitionKey,
                  reason: d.halted,
                  queued: d.queued,
                  ...(d.head[0] ? { head: d.head[0] } : {}),
                },
              ])}
            </section>`
          : d.queued > 0 && !ctx.readOnly
            ? html`<p>
                ${actionForm(ctx, 'halt', 'Halt this partition', { partitionKey: d.partitionKey }, { confirm: `Halt ${d.partitionKey}?`, danger: true })}
              </p>`
            : ''
      }
      <section>
        <h2>Head of the queue</h2>
        ${
          d.head.length === 0
            ? html`<p class="empty">No queued trade.</p>`
            : html`<table class="head">
                  <thead>
                    <tr>
                      <th>Seq</th>
                      <th>Trade</th>
                      <th>Enqueued</th>
                      <th>Waiting</th>
                      <th>Trace</th>
                      <th>Body</th>
                    </tr>
                  </thead>
                  <tbody>
                    ${d.head.map(
                      (i) =>
                        html`<tr>
                          <td class="num">${i.seq}</td>
                          <td>${i.tradeId}</td>
                          <td>${formatTime(i.enqueuedAt)}</td>
                          <td>${formatAge(ctx.now - i.enqueuedAt)}</td>
                          <td>
                            ${i.traceparent ? html`<code title="${i.traceparent}">${i.traceparent.slice(3, 35)}</code>` : ''}
                          </td>
                          <td>
                            <code class="body"
                              >${i.body.length > 240 ? `${i.body.slice(0, 240)}…` : i.body}</code
                            >
                          </td>
                        </tr>`,
                    )}
                  </tbody>
                </table>
                ${d.queued > d.head.length ? html`<p class="muted">${d.queued - d.head.length} more queued.</p>` : ''}`
        }
      </section>
      <section>
        <h2>Position (PostgreSQL)</h2>
        ${
          p
            ? html`<dl class="facts">
                <dt>Account · book · security</dt>
                <dd>${p.accountId} · ${p.bookId} · ${p.securityId}</dd>
                <dt>Net quantity</dt>
                <dd>${p.netQuantity}${p.currency ? html` <span class="muted">${p.currency}</span>` : ''}</dd>
                <dt>Bought / sold quantity</dt>
                <dd>${p.boughtQuantity} / ${p.soldQuantity}</dd>
                <dt>Bought / sold notional</dt>
                <dd>${p.boughtNotional} / ${p.soldNotional}</dd>
                <dt>Trades</dt>
                <dd>${p.tradeCount}</dd>
                <dt>Digest</dt>
                <dd><code>${p.digest}</code></dd>
                <dt>Lease epoch</dt>
                <dd>${p.leaseEpoch}</dd>
                <dt>Updated</dt>
                <dd>${formatTime(p.updatedAt)}</dd>
              </dl>`
            : html`<p class="empty">No position yet.</p>`
        }
      </section>
      <section>
        <h2>Recently applied</h2>
        ${
          d.recent.length === 0
            ? html`<p class="empty">None.</p>`
            : html`<table>
                <thead>
                  <tr>
                    <th>Seq</th>
                    <th>Trade</th>
                    <th>Type</th>
                    <th>Side</th>
                    <th>Quantity</th>
                    <th>Price</th>
                    <th>Applied</th>
                  </tr>
                </thead>
                <tbody>
                  ${d.recent.map(
                    (t) =>
                      html`<tr>
                        <td class="num">${t.seq}</td>
                        <td>${t.tradeId}</td>
                        <td>${t.type}</td>
                        <td>${t.side ?? ''}</td>
                        <td class="num">${t.quantity ?? ''}</td>
                        <td class="num">${t.price ?? ''}</td>
                        <td>${formatTime(t.appliedAt)}</td>
                      </tr>`,
                  )}
                </tbody>
              </table>`
        }
      </section>
      <section>
        <h2>Dead letters of this partition</h2>
        ${deadLetterTable(ctx, d.deadLetters, d.applied)}
      </section>`,
  );
}

export function deadLettersPage(
  ctx: PageContext,
  rows: readonly DeadLetterWithReplay[],
  applied: ReadonlyMap<string, { seq: number; partitionKey: string }>,
  filter: { partition?: string; tradeId?: string },
): string {
  return layout(
    ctx,
    'Dead letters',
    html`<form method="get" action="${ctx.base}/dead-letters" class="filter">
        <label>Partition <input name="partition" value="${filter.partition ?? ''}" maxlength="300" /></label>
        <label>Trade <input name="tradeId" value="${filter.tradeId ?? ''}" maxlength="64" /></label>
        <button type="submit">Filter</button>
      </form>
      <p class="muted">
        Replay re-enqueues the payload with its tradeId at the tail of its partition; the replay is recorded
        (who, when, the seq it got) and the worker then applies it instead of treating it as a duplicate.
      </p>
      ${deadLetterTable(ctx, rows, applied)}`,
  );
}

export interface SearchData {
  readonly q: string;
  readonly trade?: {
    readonly tradeId: string;
    readonly queued?: { seq: number; partitionKey: string };
    readonly applied?: TradeRecord;
    readonly deadLetters: readonly DeadLetterWithReplay[];
  };
  readonly partition?: { partitionKey: string; exists: boolean };
  readonly problem?: string;
}

export function searchPage(
  ctx: PageContext,
  d: SearchData,
  applied: ReadonlyMap<string, { seq: number; partitionKey: string }>,
): string {
  const t = d.trade;
  const found = (t && (t.queued || t.applied || t.deadLetters.length > 0)) || d.partition?.exists;
  return layout(
    ctx,
    `Search: ${d.q}`,
    html`${d.problem ? html`<p class="flash error">${d.problem}</p>` : ''}
    ${!found && !d.problem ? html`<p class="empty">No trade and no partition matches ${JSON.stringify(d.q)}.</p>` : ''}
    ${
      d.partition?.exists
        ? html`<section>
            <h2>Partition</h2>
            <p>${partitionLink(ctx, d.partition.partitionKey)}</p>
          </section>`
        : ''
    }
    ${
      t && (t.queued || t.applied || t.deadLetters.length > 0)
        ? html`<section class="trade">
            <h2>Trade ${t.tradeId}</h2>
            <dl class="facts">
              ${
                t.queued
                  ? html`<dt>Queued</dt>
                      <dd>seq ${t.queued.seq} of ${partitionLink(ctx, t.queued.partitionKey)}</dd>`
                  : ''
              }
              ${
                t.applied
                  ? html`<dt>Applied</dt>
                      <dd>
                        seq ${t.applied.seq} of ${partitionLink(ctx, t.applied.partitionKey)} at
                        ${formatTime(t.applied.appliedAt)} (${t.applied.type}, ${t.applied.status})
                      </dd>
                      <dt>Payload</dt>
                      <dd><code class="body">${JSON.stringify(t.applied.payload)}</code></dd>`
                  : ''
              }
            </dl>
            ${
              t.deadLetters.length > 0
                ? html`<h3>Dead letters</h3>
                    ${deadLetterTable(ctx, t.deadLetters, applied)}`
                : ''
            }
          </section>`
        : ''
    }`,
    { refresh: false },
  );
}

/** The stylesheet, served at /dashboard/assets/dashboard.css. */
export const STYLESHEET = `
:root { --fg:#1d2430; --muted:#6b7280; --line:#e5e7eb; --bg:#f8fafc; --alert:#b42318; --ok:#067647; --accent:#1849a9; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:var(--bg); }
header { display:flex; flex-wrap:wrap; gap:1rem; align-items:center; padding:.6rem 1.2rem; background:#0b1f3a; color:#fff; }
header a { color:#fff; text-decoration:none; } header nav a { margin-right:1rem; opacity:.9 } header nav a:hover { opacity:1; text-decoration:underline }
.brand { font-weight:700; font-size:1.1rem; letter-spacing:.02em }
.search { margin-left:auto; display:flex; gap:.3rem } .search input { width:18rem; padding:.3rem .5rem; border-radius:4px; border:0 }
.who { opacity:.9 } button.link { background:none; border:0; color:#fff; text-decoration:underline; cursor:pointer; padding:0 }
main { padding:1rem 1.2rem 3rem; max-width:1400px }
h1 { font-size:1.35rem; margin:.2rem 0 1rem } h2 { font-size:1.05rem; margin:1.4rem 0 .5rem }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(11rem,1fr)); gap:.7rem }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:.7rem .9rem }
.card .value { font-size:1.5rem; font-weight:650 } .card .label { color:var(--muted) } .card.alert .value { color:var(--alert) }
.columns { display:grid; grid-template-columns:repeat(auto-fit,minmax(24rem,1fr)); gap:1.2rem }
table { border-collapse:collapse; width:100%; background:#fff; border:1px solid var(--line) }
th, td { text-align:left; padding:.35rem .55rem; border-bottom:1px solid var(--line); vertical-align:top }
th { background:#f1f5f9; font-weight:600 } td.num { text-align:right; font-variant-numeric:tabular-nums }
a.pk { font-family:ui-monospace, SFMono-Regular, Menlo, monospace; color:var(--accent) }
code { font-family:ui-monospace, SFMono-Regular, Menlo, monospace; font-size:.92em } code.body { word-break:break-all }
.muted, .empty { color:var(--muted) } .ok { color:var(--ok) }
.badge { display:inline-block; padding:0 .45rem; border-radius:999px; background:#e0e7ff; color:#1e3a8a; font-size:.85em }
.badge.alert { background:#fee4e2; color:var(--alert) } .badge.ok { background:#dcfae6; color:var(--ok) }
.flash { padding:.55rem .8rem; border-radius:6px; margin:.8rem 1.2rem } .flash.ok { background:#dcfae6 } .flash.error { background:#fee4e2 }
main .flash { margin:.5rem 0 }
form.inline { display:inline } .actions form { margin:0 .25rem .25rem 0 }
button { padding:.25rem .6rem; border-radius:4px; border:1px solid #94a3b8; background:#fff; cursor:pointer }
button:hover { background:#f1f5f9 } button.danger { border-color:var(--alert); color:var(--alert) }
.refresh-bar { padding:.3rem 1.2rem; color:var(--muted); font-size:.9em; background:#eef2f7 }
dl.facts { display:grid; grid-template-columns:max-content 1fr; gap:.25rem 1rem; background:#fff; border:1px solid var(--line); padding:.7rem; border-radius:8px }
dl.facts dt { color:var(--muted) } dl.facts dd { margin:0 }
body.login main { max-width:22rem; margin:10vh auto; background:#fff; border:1px solid var(--line); border-radius:8px; padding:1.5rem }
body.login label { display:block; margin:.6rem 0 } body.login input { display:block; width:100%; padding:.4rem; margin-top:.2rem }
form.filter label { margin-right:.8rem }
`;

/**
 * The refresher, served at /dashboard/assets/refresh.js (a file, so that the
 * Content-Security-Policy allows no inline script). Every N seconds it fetches
 * the page again and swaps in the new <main>, unless paused, hidden or an
 * input has the focus; it also asks before a form with data-confirm is sent.
 */
export const REFRESH_SCRIPT = `'use strict';
(function () {
  document.addEventListener('submit', function (e) {
    var f = e.target;
    if (f && f.dataset && f.dataset.confirm && !window.confirm(f.dataset.confirm)) e.preventDefault();
  });
  var secs = Number(document.body.dataset.refresh || 0);
  if (!secs) return;
  var toggle = document.getElementById('refresh-toggle');
  var stamp = document.getElementById('refreshed-at');
  var KEY = 'tradefleet-refresh-paused';
  if (toggle) {
    toggle.checked = sessionStorage.getItem(KEY) !== '1';
    toggle.addEventListener('change', function () { sessionStorage.setItem(KEY, toggle.checked ? '0' : '1'); });
  }
  var busy = false;
  setInterval(function () {
    if (busy || document.hidden || (toggle && !toggle.checked)) return;
    var a = document.activeElement;
    if (a && (a.tagName === 'INPUT' || a.tagName === 'TEXTAREA' || a.tagName === 'SELECT') && a.type !== 'checkbox') return;
    busy = true;
    fetch(location.href, { credentials: 'same-origin', headers: { 'x-dashboard-refresh': '1' } })
      .then(function (res) {
        if (res.status === 401) { location.reload(); return; }
        if (!res.ok) { if (stamp) stamp.textContent = 'refresh failed: HTTP ' + res.status; return; }
        return res.text().then(function (text) {
          var next = new DOMParser().parseFromString(text, 'text/html').getElementById('main');
          var cur = document.getElementById('main');
          if (next && cur) cur.replaceWith(document.importNode(next, true));
          if (stamp) stamp.textContent = 'refreshed ' + new Date().toISOString().replace(/\\.\\d{3}Z$/, 'Z');
        });
      })
      .catch(function (err) { if (stamp) stamp.textContent = 'refresh failed: ' + err; })
      .then(function () { busy = false; });
  }, secs * 1000);
})();
`;
