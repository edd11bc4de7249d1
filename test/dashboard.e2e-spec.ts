/**
 * The dashboard at / in a real headless browser: Debian's chromium driven by playwright-core
 * (`npx playwright install` cannot run here). The app listens on a free loopback port and
 * ingests the recorded fixture from a loopback upstream. Screenshots go to .screenshots/
 * (gitignored). Without /usr/bin/chromium the suite is skipped locally, but fails in CI.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { AddressInfo } from 'node:net';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import playwright, { type Browser, type Page } from 'playwright-core';
import { startTestApp, postRefresh } from './support/app.js';
import { deleteKeys, uniquePrefix } from './support/redis.js';
import { FakeUpstream, loadFixture, RawRecord } from './support/upstream.js';

// Page-side globals inside page.evaluate / waitForFunction callbacks (the project has no DOM lib).
declare const document: any; // eslint-disable-line @typescript-eslint/no-explicit-any
declare const window: any; // eslint-disable-line @typescript-eslint/no-explicit-any

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env.CI === 'true') {
  throw new Error(`${CHROMIUM} is missing: the dashboard browser test must run in CI (apt-get install -y chromium)`);
}

const HOUR = 3_600_000;
const fixture = loadFixture();
const ms = (r: RawRecord) => Math.trunc((r.timestamp as number) * 1000);
/** The feed as it was before 15:00 on the last day; the full fixture is the "new ingest". */
const earlier = fixture.filter((r) => ms(r) < Date.parse('2021-07-07T15:00:00Z'));

/** Hourly buckets holding samples in the 24 h before the newest one. */
function hoursShown(records: RawRecord[], rangeMs = 24 * HOUR): number {
  const latest = Math.max(...records.map(ms));
  return new Set(records.map(ms).filter((t) => t >= latest - rangeMs).map((t) => Math.floor(t / HOUR))).size;
}

(haveChromium ? describe : describe.skip)('dashboard in headless chromium (e2e)', () => {
  const prefix = uniquePrefix('dashboard');
  let redis: Redis;
  let upstream: FakeUpstream;
  let app: NestFastifyApplication;
  let browser: Browser;
  let page: Page;
  let base: string;

  const summary = async () => (await app.inject({ method: 'GET', url: '/is-bitcoin-lit' })).json();
  const shot = async (name: string) => {
    mkdirSync('.screenshots', { recursive: true });
    await page.screenshot({ path: `.screenshots/${name}.png`, fullPage: true });
  };

  beforeAll(async () => {
    ({ redis, upstream, app } = await startTestApp(prefix, earlier));
    await app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
    expect((await postRefresh(app)).json()).toMatchObject({ stored: 2 * earlier.length });
    browser = await playwright.chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await upstream?.stop();
    await deleteKeys(redis, prefix);
    await redis.quit();
  });

  // Whatever the page logs as an error (a failed request, a script error, a CSP violation) fails the test.
  let consoleErrors: string[];
  beforeEach(async () => {
    consoleErrors = [];
    page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
    page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
    page.on('pageerror', (err) => consoleErrors.push(err.message));
  });
  afterEach(async () => {
    await page?.close();
    expect(consoleErrors).toEqual([]);
  });

  it('shows the directions and one chart point per hour of the last 24 h', async () => {
    await page.goto(`${base}/`);
    await page.waitForSelector('svg[data-points]');
    const expectedPoints = hoursShown(earlier);
    expect(expectedPoints).toBe(22); // 2021-07-06 17:00 … 2021-07-07 14:00
    expect(await page.getAttribute('svg[data-points]', 'data-points')).toBe(String(expectedPoints));
    expect(await page.locator('circle.point.price').count()).toBe(expectedPoints);
    expect(await page.locator('circle.point.sentiment').count()).toBe(expectedPoints);

    const s = await summary();
    await page.waitForFunction((d) => document.getElementById('price-direction')?.dataset.direction === d, s.price_direction);
    expect(await page.getAttribute('#sentiment-direction', 'data-direction')).toBe(s.sentiment_direction);
    const lastHour = s.hourly_average_of_averages.at(-1);
    expect(await page.textContent('#sentiment-value')).toBe(lastHour.sentiment.toFixed(3));
    expect(await page.textContent('#price-value')).toBe(
      new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', maximumFractionDigits: 2 }).format(lastHour.price),
    );
    expect(await page.textContent('#verdict')).toMatch(/lit|cold|Sort of/);
    await shot('dashboard-desktop');
  });

  it('switches the range (7 d asks the API for 7 days before the newest sample)', async () => {
    await page.goto(`${base}/`);
    await page.waitForSelector('svg[data-points]');
    const request = page.waitForRequest((r) => r.url().includes('/series/combined'));
    await page.click('button[data-range="7d"]');
    const url = new URL((await request).url());
    const latest = Math.max(...earlier.map(ms));
    expect(url.searchParams.get('to')).toBe(String(latest));
    expect(url.searchParams.get('from')).toBe(String(latest - 7 * 24 * HOUR));
    expect(await page.getAttribute('button[data-range="7d"]', 'aria-pressed')).toBe('true');
    await page.waitForFunction(() => document.querySelector('svg[data-points]') !== null);
    // The fixture spans one day, so 7 days show the same hours.
    expect(await page.getAttribute('svg[data-points]', 'data-points')).toBe(String(hoursShown(earlier, 7 * 24 * HOUR)));
  });

  it('is readable on a phone: no horizontal scrolling, the chart fits the screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${base}/`);
    await page.waitForSelector('svg[data-points]');
    const widths = await page.evaluate(() => ({
      page: document.documentElement.scrollWidth,
      chart: document.querySelector('#chart svg')!.getBoundingClientRect().width,
    }));
    expect(widths.page).toBeLessThanOrEqual(390);
    expect(widths.chart).toBeLessThanOrEqual(390);
    await shot('dashboard-phone');
  });

  it('shows a new ingest without a reload', async () => {
    // ?refresh=1: poll every second while /events is not connected; with /events the ingest
    // event itself triggers the update.
    await page.goto(`${base}/?refresh=1`);
    await page.waitForSelector('svg[data-points]');
    expect(await page.getAttribute('svg[data-points]', 'data-points')).toBe('22');
    await page.evaluate(() => (window.marker = true));

    upstream.mode = { kind: 'json', body: fixture };
    expect((await postRefresh(app)).json()).toMatchObject({ stored: 2 * (fixture.length - earlier.length) });
    const after = await summary();
    const lastHour = after.hourly_average_of_averages.at(-1);
    expect(lastHour.time).toBe('2021-07-07T17:00:00.000Z');

    const expectedPoints = hoursShown(fixture);
    expect(expectedPoints).toBe(25);
    await page.waitForFunction((n) => document.querySelector('svg[data-points]')?.getAttribute('data-points') === String(n), expectedPoints, {
      timeout: 15_000,
    });
    await page.waitForFunction((v) => document.getElementById('sentiment-value')?.textContent === v, lastHour.sentiment.toFixed(3), { timeout: 15_000 });
    expect(await page.getAttribute('#price-direction', 'data-direction')).toBe(after.price_direction);
    // Same document: nothing reloaded it.
    expect(await page.evaluate(() => window.marker)).toBe(true);
    await shot('dashboard-after-ingest');
  });

  it('keeps Swagger at /docs and serves the page as HTML', async () => {
    const res = await fetch(`${base}/`);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await res.text()).toContain('<title>Is Bitcoin lit?</title>');
    expect((await fetch(`${base}/docs`)).status).toBe(200);
    // Swagger UI renders under the page CSP (its scripts and styles are allowed, nothing is blocked).
    await page.goto(`${base}/docs`);
    await page.waitForSelector('.opblock', { timeout: 15_000 });
    expect(await page.locator('.opblock').count()).toBeGreaterThanOrEqual(8);
    const doc = (await (await fetch(`${base}/docs-json`)).json()) as { paths: Record<string, unknown> };
    expect(doc.paths['/']).toBeUndefined();
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/series', '/series/combined', '/series/{metric}']));
  });
});
