/**
 * The dashboard as an operator uses it: the `tradefleet` producer and worker
 * processes against real Redis and PostgreSQL, driven through a real headless
 * Chromium (Debian's, through playwright-core). Log in, find the partition the
 * test halted, resume it, watch it drain without reloading (the page refreshes
 * itself), screenshots in test-output/. The overview shows the partition
 * counts (ready / leased / retrying / expired leases) and no bull-board view is
 * left (/dashboard/queues is 404). Also: 401 without credentials, and a
 * read-only producer that refuses the same action.
 */
import fs from 'node:fs';
import path from 'node:path';

import IORedis from 'ioredis';
import { chromium, type Browser, type Page } from 'playwright-core';

import { partitionKey } from '../../src/domain';
import { PartitionAdmin, QueueKeys } from '../../src/queue';
import { createTestDatabase, redisUrl, testNamespace, type TestDatabase } from '../helpers/isolation';
import { exitCode, outputOf, spawnCli, stopAll, waitFor } from '../helpers/processes';
import { freePort } from '../helpers/servers';
import { tool } from '../helpers/tools';

jest.setTimeout(180_000);

const chromiumBin = tool('chromium', 'chromium', ['/usr/bin/chromium', '/usr/bin/chromium-browser']);
const OUT = path.join(__dirname, '..', '..', 'test-output');
const USER = 'operator';
const PASSWORD = 'a long dashboard password';
const TRADES = 30;

const describeBrowser = chromiumBin.skipReason ? describe.skip : describe;

describeBrowser('dashboard in headless Chromium', () => {
  let database: TestDatabase;
  let redis: IORedis;
  let browser: Browser;
  let admin: PartitionAdmin;
  let namespace: string;
  let keys: QueueKeys;
  let env: Record<string, string>;
  let api: string;
  let readOnlyApi: string;

  async function startProducer(extra: Record<string, string>): Promise<string> {
    const port = await freePort();
    const child = spawnCli(['producer'], { ...env, PORT: String(port), ...extra });
    const url = `http://127.0.0.1:${port}`;
    await waitFor(
      `the producer on ${url}`,
      async () => {
        if (child.exitCode !== null) throw new Error(`producer exited: ${outputOf(child)}`);
        return (await fetch(`${url}/readyz`).catch(() => undefined))?.ok;
      },
      60_000,
      200,
    );
    return url;
  }

  beforeAll(async () => {
    fs.mkdirSync(OUT, { recursive: true });
    database = await createTestDatabase();
    namespace = testNamespace('dashboard-browser');
    keys = new QueueKeys(namespace);
    env = {
      REDIS_URL: redisUrl(),
      DATABASE_URL: database.url,
      HOST: '127.0.0.1',
      TRADEFLEET_NAMESPACE: namespace,
      LOG_LEVEL: 'warn',
      DASHBOARD_USER: USER,
      DASHBOARD_PASSWORD: PASSWORD,
      METRICS_PORT: '0',
    };
    const migrate = spawnCli(['migrate'], env);
    const code = await exitCode(migrate);
    if (code !== 0) throw new Error(`tradefleet migrate exited ${code}: ${outputOf(migrate)}`);
    redis = new IORedis(redisUrl(), { maxRetriesPerRequest: null });
    admin = new PartitionAdmin(redis, namespace);
    api = await startProducer({});
    readOnlyApi = await startProducer({ DASHBOARD_READ_ONLY: 'true' });
    spawnCli(['worker'], env);
    browser = await chromium.launch({
      executablePath: chromiumBin.require(),
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await stopAll(15_000);
    await redis?.quit();
    await database?.drop();
  });

  async function post(body: unknown): Promise<void> {
    const res = await fetch(`${api}/v1/trades/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(202);
  }

  const trades = (p: string, count: number, from = 0) =>
    Array.from({ length: count }, (_, i) => ({
      tradeId: `BRW-${p}-${from + i}`,
      type: 'NEW',
      accountId: `ACC-${p}`,
      bookId: 'DESK',
      securityId: `SEC-${p}`,
      side: i % 3 === 0 ? 'SELL' : 'BUY',
      quantity: `${10 + i}`,
      price: '99.5',
      currency: 'USD',
      tradeTime: '2026-11-22T10:15:30.123Z',
    }));

  async function logIn(page: Page, base: string): Promise<void> {
    const first = await page.goto(`${base}/dashboard`);
    expect(first?.status()).toBe(401);
    await page.getByLabel('User').fill(USER);
    await page.getByLabel('Password').fill(PASSWORD);
    await Promise.all([
      page.waitForURL(`${base}/dashboard`),
      page.getByRole('button', { name: 'Log in' }).click(),
    ]);
    await page.getByRole('heading', { name: 'Queue overview' }).waitFor();
  }

  it('401 without credentials', async () => {
    const res = await fetch(`${api}/dashboard`);
    expect(res.status).toBe(401);
    const page = await browser.newPage();
    const r = await page.goto(`${api}/dashboard/dead-letters`);
    expect(r?.status()).toBe(401);
    await page.getByRole('button', { name: 'Log in' }).waitFor();
    expect(await page.content()).not.toContain('Dead letters</h1>');
    await page.close();
  });

  it('log in, see the halted partition, resume it, watch it drain; screenshots', async () => {
    const p = 'halted';
    const pk = partitionKey(`ACC-${p}`, 'DESK', `SEC-${p}`);
    await admin.halt(pk, { code: 'maintenance', message: 'halted by the browser test' });
    await post({ trades: trades(p, TRADES) });
    // Other partitions drain meanwhile (no head-of-line blocking by the halted one).
    await post({ trades: [...trades('a', 5), ...trades('b', 5)] });
    await waitFor(
      'the other partitions to drain',
      async () => (await redis.hlen(keys.backlog)) === TRADES,
      60_000,
      200,
    );

    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await logIn(page, api);
    const row = page.locator(`#halted tr[data-partition="${pk}"]`);
    await row.waitFor();
    expect(await row.textContent()).toContain('maintenance');
    expect(await row.locator('td.num').textContent()).toBe(String(TRADES));
    await page.locator('#hottest').getByText(pk).waitFor();
    // Partition counts, not tokens: the halted partition is not claimable, the others are drained.
    expect(await page.locator('#partitions-ready').textContent()).toBe('0');
    expect(await page.locator('#partitions-leased').textContent()).toBe('0');
    expect(await page.locator('#partitions-retrying').textContent()).toBe('0');
    expect(await page.locator('#partitions-expired').textContent()).toBe('0');
    await page.getByText('partitions ready / leased').waitFor();
    await page.getByText('partitions retrying / with an expired lease').waitFor();
    expect(await page.locator('header nav').textContent()).not.toMatch(/bull-board|drain token/i);
    await page.screenshot({ path: path.join(OUT, 'dashboard-halted.png'), fullPage: true });

    await Promise.all([page.waitForURL(/\/dashboard$/), row.getByRole('button', { name: 'Resume' }).click()]);
    await page
      .getByRole('status')
      .filter({ hasText: `partition ${pk} resumed` })
      .waitFor();

    // The partition page updates itself (no reload by the test) until the queue is empty.
    await page.goto(`${api}/dashboard/partition?key=${encodeURIComponent(pk)}`);
    // (A string: it runs in the page, where `document` is.)
    await page.waitForFunction(
      `document.getElementById('partition-queued')?.textContent === '0' && document.getElementById('last-seq')?.textContent === '${TRADES}'`,
      undefined,
      { timeout: 60_000, polling: 250 },
    );
    expect(await page.locator('#partition-state').textContent()).toContain('idle');
    await page.screenshot({ path: path.join(OUT, 'dashboard.png'), fullPage: true });
    expect(fs.statSync(path.join(OUT, 'dashboard.png')).size).toBeGreaterThan(10_000);
    await page.goto(`${api}/dashboard`);
    await page.getByText('No halted partition.').waitFor();

    // No bull-board view any more (no BullMQ queue left to show).
    expect((await page.goto(`${api}/dashboard/queues`))?.status()).toBe(404);
    await page.close();
  });

  it('read-only: no action buttons, and a resume is refused with 403', async () => {
    const p = 'readonly';
    const pk = partitionKey(`ACC-${p}`, 'DESK', `SEC-${p}`);
    await admin.halt(pk, { code: 'maintenance', message: 'halted by the read-only test' });
    await post({ trades: trades(p, 3) });
    const page = await browser.newPage();
    await logIn(page, readOnlyApi);
    const row = page.locator(`#halted tr[data-partition="${pk}"]`);
    await row.waitFor();
    expect(await row.getByRole('button').count()).toBe(0);
    expect(await page.locator('.who').textContent()).toContain('read-only');
    const res = await page.request.post(`${readOnlyApi}/dashboard/actions/resume`, {
      form: { partitionKey: pk, _csrf: 'irrelevant' },
      headers: { origin: readOnlyApi },
    });
    expect(res.status()).toBe(403);
    expect(await redis.hexists(keys.halted, pk)).toBe(1);
    await page.close();
    await admin.resume(pk);
  });
});
