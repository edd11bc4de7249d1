import { Cluster } from 'ioredis';
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

  it('fails naming the setting for a reply no RedisTimeSeries gives (another module\'s TS.*)', async () => {
    const other = Object.assign(new Error('TS: the key "__timeseries_probe__:x" does not exist or is not a timeseries key'), { name: 'ReplyError' });
    await expect(detectBackend(stub(other).redis)).rejects.toThrow(
      /^TIMESERIES_BACKEND=auto cannot tell which backend this server takes: TS.INFO on a missing key answered "TS: the key .*Set TIMESERIES_BACKEND=native \(RedisTimeSeries\) or portable/,
    );
  });

  it('says native when the ACL refuses the probe key (Redis checks the command exists first)', async () => {
    for (const message of [
      'NOPERM No permissions to access a key',
      "NOPERM No permissions to access the '__timeseries_probe__:x' key",
      'NOPERM this user has no permissions to access one of the keys used as arguments',
    ]) {
      expect(await detectBackend(stub(new Error(message)).redis)).toBe('native');
    }
    // A user named after keys who may not run TS.INFO at all is still an error.
    await expect(detectBackend(stub(new Error("NOPERM User keys has no permissions to run the 'ts.info' command")).redis)).rejects.toThrow('NOPERM');
  });

  it('says native if the probe key somehow exists', async () => {
    expect(await detectBackend(stub(['totalSamples', 0]).redis)).toBe('native');
  });

  describe('on a Redis Cluster', () => {
    /** A Cluster whose masters answer TS.INFO with the given replies. */
    function cluster(...replies: Error[]) {
      const masters = replies.map((reply, i) => ({ ...stub(reply).redis, options: { host: '10.0.0.1', port: 7000 + i } }));
      return Object.assign(Object.create(Cluster.prototype) as Cluster, { nodes: () => masters });
    }
    const unknown = new Error("ERR unknown command 'TS.INFO', with args beginning with: 'x'");
    const missing = new Error('ERR TSDB: the key does not exist');

    it('asks every master; MOVED from a master that has the command counts as native', async () => {
      expect(await detectBackend(cluster(missing, new Error('MOVED 1234 10.0.0.1:7000'), missing))).toBe('native');
      expect(await detectBackend(cluster(unknown, unknown, unknown))).toBe('portable');
    });

    it('fails when the masters disagree, naming each', async () => {
      await expect(detectBackend(cluster(missing, unknown))).rejects.toThrow(
        'Redis Cluster masters disagree about the RedisTimeSeries module (10.0.0.1:7000=native, 10.0.0.1:7001=portable): load it on every node, or set TIMESERIES_BACKEND=portable',
      );
    });
  });
});
