import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Env } from '../config/env.validation.js';
import { RedisKeys } from '../redis/redis-keys.service.js';
import { RedisClient } from '../redis/redis.types.js';
import type { SummaryResponseDto } from '../summary/dto/summary-response.dto.js';
import { TimeseriesService } from '../timeseries/timeseries.service.js';
import { RawReadGate } from '../timeseries/raw-read-gate.service.js';
import type { VerdictChangedEventDto } from './dto/verdict.dto.js';
import { VerdictEvents } from './verdict.events.js';
import { VerdictService } from './verdict.service.js';

const settings: Partial<Env> = { REDIS_KEY_PREFIX: 'app', TIMESERIES_RETENTION_MS: 0, SERIES_MAX_POINTS: 1000 };
const config = { get: (k: keyof Env) => settings[k] } as unknown as ConfigService<Env, true>;

const summary = (verdict: 'lit' | 'cold', asOf: string) => ({ verdict, as_of: asOf, verdict_since: null }) as unknown as SummaryResponseDto;

describe('VerdictService.record', () => {
  beforeEach(() => {
    jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
    jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
  });
  afterEach(() => jest.restoreAllMocks());

  it('emits a change whose transition ran in Redis but whose answer was lost, once it reads that it was made', async () => {
    // Redis as the transition left it: the change of the first call (its id is read back from the script's arguments).
    const state: Record<string, string | null> = { event: null, previous: null };
    const evalsha = jest.fn(async (..._args: unknown[]): Promise<unknown> => {
      const args = _args.map(String);
      if (evalsha.mock.calls.length === 1) {
        // The transition ran (lit → cold), then its answer was lost (a command timeout, a dropped connection).
        Object.assign(state, { event: args[6], previous: 'lit' });
        throw new Error('Command timed out');
      }
      return ['same', 'cold', String(Date.parse('2031-03-01T04:00:00.000Z')), ''];
    });
    const redis = {
      evalsha,
      hmget: jest.fn(async (_key: string, ...fields: string[]) => fields.map((f) => state[f] ?? null)),
    } as unknown as RedisClient;
    const timeseries = { ensureSeries: async () => undefined, add: async () => ({ rejected: 0, errors: [] }) } as unknown as TimeseriesService;
    const events = new VerdictEvents();
    const emitted: VerdictChangedEventDto[] = [];
    events.on((e) => void emitted.push(e));
    const verdicts = new VerdictService(redis, new RedisKeys(config), timeseries, events, new RawReadGate(config), config);

    await expect(verdicts.record(summary('cold', '2031-03-01T04:00:00.000Z'))).rejects.toThrow('Command timed out');
    expect(emitted).toEqual([]);
    // The next evaluation finds the verdict already cold ('same'): without a look at the
    // change it may have made, the event would never be sent.
    await verdicts.record(summary('cold', '2031-03-01T04:01:00.000Z'));
    expect(emitted).toEqual([{ type: 'verdict.changed', id: state.event, previous: 'lit', verdict: 'cold', since: '2031-03-01T04:00:00.000Z', summary: expect.objectContaining({ as_of: '2031-03-01T04:00:00.000Z' }) }]);
    // Once only.
    await verdicts.record(summary('cold', '2031-03-01T04:02:00.000Z'));
    expect(emitted).toHaveLength(1);
  });
});
