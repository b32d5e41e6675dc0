import type { RedisConnectionConfig } from '../config';
import { createRedis } from '../config/connections';
import { QueueKeys, readSignals } from '../queue';

export interface DemoOptions {
  api: string;
  /** Where the progress line reads the queue signals. */
  redis: RedisConnectionConfig;
  /** Bearer token for the API, when it requires one. */
  token?: string;
  namespace: string;
  isStopping: () => boolean;
  /** Trades per second to aim at. @default 2000 */
  rate?: number;
}

/**
 * Sends sample trades (NEW, with AMENDs and CANCELs of earlier ones) over 200
 * partitions to the producer API and prints progress every two seconds, until
 * the fleet stops.
 */
export async function runDemo(opts: DemoOptions): Promise<void> {
  const rate = opts.rate ?? 2000;
  const redis = createRedis(opts.redis, { maxRetriesPerRequest: 1 });
  const keys = new QueueKeys(opts.namespace);
  const run = Date.now().toString(36);
  const live: { id: string; account: string; security: string }[] = [];
  let n = 0;
  let queued = 0;
  let refused = 0;
  const started = Date.now();
  let lastReport = started;
  try {
    while (!opts.isStopping()) {
      const tickStart = Date.now();
      const trades = [];
      for (let i = 0; i < rate / 10; i++) {
        n++;
        const roll = n % 10;
        if (roll === 0 && live.length > 0) {
          const ref = live.splice(n % live.length, 1)[0]!;
          trades.push(base(`D-${run}-${n}`, ref.account, ref.security, 'CANCEL', ref.id));
        } else if (roll === 5 && live.length > 0) {
          const ref = live[n % live.length]!;
          trades.push({
            ...base(`D-${run}-${n}`, ref.account, ref.security, 'AMEND', ref.id),
            side: 'BUY',
            quantity: String(50 + (n % 50)),
            price: '101.5',
            currency: 'USD',
          });
        } else {
          const p = n % 200;
          const account = `DEMO-${p % 20}`;
          const security = `SEC-${p}`;
          const id = `D-${run}-${n}`;
          trades.push({
            ...base(id, account, security, 'NEW'),
            side: n % 3 ? 'BUY' : 'SELL',
            quantity: String(1 + (n % 100)),
            price: `${100 + (n % 7)}.25`,
            currency: 'USD',
          });
          live.push({ id, account, security });
          if (live.length > 5000) live.shift();
        }
      }
      try {
        const res = await fetch(`${opts.api}/v1/trades/batch`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
          },
          body: JSON.stringify({ trades }),
        });
        const body = (await res.json()) as { results?: { status: string }[] };
        if (body.results) queued += body.results.filter((r) => r.status === 'queued').length;
        else refused += trades.length;
      } catch {
        refused += trades.length;
      }
      const now = Date.now();
      if (now - lastReport >= 2000) {
        lastReport = now;
        const s = await readSignals(redis, keys).catch(() => undefined);
        const secs = (now - started) / 1000;
        console.error(
          `[demo] ${queued} queued (${Math.round(queued / secs)}/s), ${refused} refused` +
            (s
              ? ` | backlog ${s.backlog}, pending partitions ${s.pendingPartitions}, halted ${s.haltedPartitions}, oldest ${s.oldestAgeMs} ms`
              : ''),
        );
      }
      await new Promise((r) => setTimeout(r, Math.max(0, 100 - (Date.now() - tickStart))));
    }
  } finally {
    redis.disconnect();
  }
}

function base(tradeId: string, accountId: string, securityId: string, type: string, refTradeId?: string) {
  return {
    tradeId,
    accountId,
    bookId: 'DEMO-BOOK',
    securityId,
    type,
    tradeTime: new Date().toISOString(),
    ...(refTradeId ? { refTradeId } : {}),
  };
}
