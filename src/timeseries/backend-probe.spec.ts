import type { RedisClient } from '../redis/redis.types.js';
import { detectBackend } from './backend-probe.js';

/** A client whose only command is `call`, answering with `reply` (an Error rejects). */
function stub(reply: unknown) {
  const calls: unknown[][] = [];
  const client = {
    async call(...args: unknown[]) {
      calls.push(args);
      if (reply instanceof Error) throw reply;
      return reply;
    },
  };
  return { calls, redis: client as unknown as RedisClient };
}

describe('detectBackend', () => {
  it('says native when TS.INFO answers that the key does not exist', async () => {
    const { calls, redis } = stub(new Error('ERR TSDB: the key does not exist'));
    expect(await detectBackend(redis)).toBe('native');
    expect(calls).toHaveLength(1);
    expect(calls[0][0]).toBe('TS.INFO');
    expect(calls[0][1]).toMatch(/^__timeseries_probe__:[0-9a-f-]{36}$/);
  });

  it('says native for the older wording without "the"', async () => {
    expect(await detectBackend(stub(new Error('TSDB: key does not exist')).redis)).toBe('native');
  });

  it('says portable when the command is unknown (Redis 7 / Redis 6 / Valkey wordings)', async () => {
    for (const message of [
      "ERR unknown command 'TS.INFO', with args beginning with: '__timeseries_probe__:x' ",
      'ERR unknown command `TS.INFO`, with args beginning with: `x`, ',
    ]) {
      expect(await detectBackend(stub(new Error(message)).redis)).toBe('portable');
    }
  });

  it('rethrows anything else (permissions, connection)', async () => {
    await expect(detectBackend(stub(new Error("NOPERM User has no permissions to run the 'ts.info' command")).redis)).rejects.toThrow('NOPERM');
    await expect(detectBackend(stub(new Error('Connection is closed.')).redis)).rejects.toThrow('Connection is closed.');
  });

  it('says native if the probe key somehow exists', async () => {
    expect(await detectBackend(stub(['totalSamples', 0]).redis)).toBe('native');
  });
});
