import { jest } from '@jest/globals';
import type { ConfigService } from '@nestjs/config';
import type { CacheService } from '../cache/cache.service.js';
import type { Env } from '../config/env.validation.js';
import { IngestEvents, type SourceIngestedEvent } from '../ingest/ingest.events.js';
import type { RedisKeys } from '../redis/redis-keys.service.js';
import type { SeriesRepository } from '../series/series.repository.js';
import type { VerdictService } from '../verdict/verdict.service.js';
import type { SummaryResponseDto } from './dto/summary-response.dto.js';
import { SummaryEvents } from './summary.events.js';
import { buildSummary, CARRY_MS, dailyTrend, direction, levelsInEffect, SummaryService, windowStart } from './summary.service.js';

const H = 3_600_000;

describe('summary helpers', () => {
  it('starts the window at the top of the hour SUMMARY_HOURS-1 hours before the anchor hour', () => {
    const anchor = Date.UTC(2021, 6, 7, 17, 30, 18);
    expect(new Date(windowStart(anchor, 3)).toISOString()).toBe('2021-07-07T15:00:00.000Z');
    expect(new Date(windowStart(anchor, 1)).toISOString()).toBe('2021-07-07T17:00:00.000Z');
    expect(windowStart(17 * H, 3)).toBe(15 * H); // anchor exactly on the hour
  });

  it('compares numbers, not strings', () => {
    expect(direction(-0.5, -0.1)).toBe('rising');
    expect(direction(-0.1, -0.5)).toBe('falling');
    expect(direction(9, 10)).toBe('rising'); // "9" > "10" as strings
    expect(direction(1, 1)).toBe('flat');
  });

  it('joins price and sentiment on bucket time; an hour missing from one has null there', () => {
    const s = buildSummary(
      [
        { timestamp: 0, value: 10 },
        { timestamp: H, value: 11 },
        { timestamp: 2 * H, value: 9 },
      ],
      [
        { timestamp: 0, value: -0.2 },
        { timestamp: 2 * H, value: 0.1 },
      ],
    );
    expect(s).toEqual({
      hourly_average_of_averages: [
        { price: 10, sentiment: -0.2, time: '1970-01-01T00:00:00.000Z' },
        { price: 11, sentiment: null, time: '1970-01-01T01:00:00.000Z' },
        { price: 9, sentiment: 0.1, time: '1970-01-01T02:00:00.000Z' },
      ],
      price_direction: 'falling',
      sentiment_direction: 'rising',
    });
  });

  it('is null without any hour; one hour is flat; a metric without data has a null direction', () => {
    expect(buildSummary([], [])).toBeNull();
    expect(buildSummary([{ timestamp: 0, value: 1 }], [{ timestamp: 0, value: 2 }])).toMatchObject({ price_direction: 'flat', sentiment_direction: 'flat' });
    expect(buildSummary([{ timestamp: 0, value: 1 }, { timestamp: H, value: 2 }], [])).toEqual({
      hourly_average_of_averages: [
        { price: 1, sentiment: null, time: '1970-01-01T00:00:00.000Z' },
        { price: 2, sentiment: null, time: '1970-01-01T01:00:00.000Z' },
      ],
      price_direction: 'rising',
      sentiment_direction: null,
    });
  });

  it('carries a daily level through every hour until the next one, never before its time nor past CARRY_MS', () => {
    const D = 24 * H;
    const day1 = { timestamp: 10 * D, value: 0.3 };
    const day2 = { timestamp: 11 * D, value: -0.1 };
    // The window 10D-1h .. 11D+1h: nothing in effect before day 1's value.
    expect(levelsInEffect([day1, day2], 10 * D - H, 11 * D + H)).toEqual([
      ...Array.from({ length: 24 }, (_, i) => ({ timestamp: 10 * D + i * H, value: 0.3 })),
      { timestamp: 11 * D, value: -0.1 },
      { timestamp: 11 * D + H, value: -0.1 },
    ]);
    // A value inside an hour is in effect for that hour.
    expect(levelsInEffect([{ timestamp: 5 * H + 1, value: 7 }], 5 * H, 5 * H)).toEqual([{ timestamp: 5 * H, value: 7 }]);
    // Past CARRY_MS it no longer counts.
    expect(levelsInEffect([day1], 10 * D + CARRY_MS - H, 10 * D + CARRY_MS)).toEqual([{ timestamp: 10 * D + CARRY_MS - H, value: 0.3 }]);
  });
});

describe('a daily index\'s direction', () => {
  const D = 24 * H;
  const days = [{ timestamp: 9 * D, value: 0.1 }, { timestamp: 10 * D, value: -0.5 }, { timestamp: 11 * D, value: 0.5 }];

  it('compares the value in effect in the last hour with the day before, whatever the window sees', () => {
    // A 3 h window inside day 11: every hour has 0.5 (flat by the hours alone), but the index rose.
    const window = levelsInEffect(days, 11 * D + 5 * H, 11 * D + 7 * H);
    expect(window.map((h) => h.value)).toEqual([0.5, 0.5, 0.5]);
    expect(dailyTrend(days, window)).toEqual([days[1], days[2]]);
    const summary = buildSummary([], window, { sentiment: dailyTrend(days, window) });
    expect(summary?.sentiment_direction).toBe('rising');
    // Across midnight the last hour decides: day 10's value against day 9's.
    expect(dailyTrend(days, levelsInEffect(days, 10 * D - 2 * H, 10 * D))).toEqual([days[0], days[1]]);
  });

  it('an index that stopped (its value in effect two days old or more) is flat, not its last move', () => {
    const window = levelsInEffect(days, 13 * D + 5 * H, 13 * D + 7 * H); // day 11's value, carried two days on
    expect(window.map((h) => h.value)).toEqual([0.5, 0.5, 0.5]);
    expect(dailyTrend(days, window)).toEqual([days[2]]);
    expect(dailyTrend(days, levelsInEffect(days, 12 * D + 20 * H, 12 * D + 22 * H))).toEqual([days[1], days[2]]); // under two days: still the move
  });

  it('one day known: flat; nothing in effect: no direction', () => {
    expect(dailyTrend(days.slice(0, 1), levelsInEffect(days.slice(0, 1), 9 * D, 9 * D + H))).toEqual([days[0]]);
    expect(dailyTrend(days, [])).toEqual([]);
    expect(buildSummary([{ timestamp: 0, value: 1 }], [], { sentiment: [] })?.sentiment_direction).toBeNull();
  });
});

describe('SummaryService refreshes after ingest runs', () => {
  /** A service whose refreshCache is a queue of promises the test settles by hand. */
  function setup() {
    const config = { get: (name: string) => ({ SUMMARY_ANCHOR: 'now' })[name] ?? 1 };
    const series = { catalog: [{ source: 'coinbase' }], defs: () => [] };
    const ingestEvents = new IngestEvents();
    const summaryEvents = new SummaryEvents();
    const service = new SummaryService(
      series as unknown as SeriesRepository,
      {} as RedisKeys,
      {} as CacheService,
      ingestEvents,
      summaryEvents,
      {} as VerdictService,
      config as unknown as ConfigService<Env, true>,
    );
    const pending: Array<(summary: SummaryResponseDto) => void> = [];
    const refreshCache = jest.spyOn(service, 'refreshCache').mockImplementation(() => new Promise((resolve) => pending.push(resolve)));
    const emitted: Array<{ source: string; summary: unknown }> = [];
    summaryEvents.on((e) => void emitted.push({ source: e.cause.source, summary: e.summary }));
    service.onModuleInit();
    const ingested = (source: string) => ingestEvents.emit({ source, report: {} } as unknown as SourceIngestedEvent);
    return { refreshCache, pending, emitted, ingested };
  }
  const summary = (n: number) => ({ n }) as unknown as SummaryResponseDto;
  const settle = () => new Promise((resolve) => setImmediate(resolve));

  it('runs one refresh at a time; runs that finish while one is queued share it', async () => {
    const { refreshCache, pending, emitted, ingested } = setup();
    const runs = [ingested('coinbase')];
    await settle();
    expect(refreshCache).toHaveBeenCalledTimes(1);
    runs.push(ingested('kraken'), ingested('bitstamp'));
    await settle();
    expect(refreshCache).toHaveBeenCalledTimes(1); // the second waits for the first
    pending[0](summary(1));
    await settle();
    expect(refreshCache).toHaveBeenCalledTimes(2); // kraken's and bitstamp's, shared
    pending[1](summary(2));
    await Promise.all(runs);
    expect(emitted).toEqual([
      { source: 'coinbase', summary: summary(1) },
      { source: 'kraken', summary: summary(2) },
      { source: 'bitstamp', summary: summary(2) },
    ]);
    // Nothing queued any more: the next run gets a refresh of its own.
    const next = ingested('coinbase');
    await settle();
    expect(refreshCache).toHaveBeenCalledTimes(3);
    pending[2](summary(3));
    await next;
    expect(emitted.at(-1)).toEqual({ source: 'coinbase', summary: summary(3) });
  });

  it('a run that finishes once the queued refresh has started gets a later one (it may not see its samples)', async () => {
    const { refreshCache, pending, emitted, ingested } = setup();
    const first = ingested('coinbase');
    await settle();
    pending[0](summary(1));
    await first;
    const second = ingested('kraken'); // starts at once: nothing running
    await settle();
    const third = ingested('bitstamp');
    await settle();
    expect(refreshCache).toHaveBeenCalledTimes(2);
    pending[1](summary(2));
    await settle();
    expect(refreshCache).toHaveBeenCalledTimes(3);
    pending[2](summary(3));
    await Promise.all([second, third]);
    expect(emitted.map((e) => e.summary)).toEqual([summary(1), summary(2), summary(3)]);
  });
});
