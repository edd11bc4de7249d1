import { Command, Redis } from 'ioredis';
import { callOnKey, KeyedCommand, queueOnKey } from './keyed-command.js';
import type { RedisClient } from './redis.types.js';

describe('KeyedCommand', () => {
  it('declares its key, so a Cluster routes it by the key slot although ioredis does not know the command', () => {
    // ioredis finds no key in a command it does not know: a Cluster would pick a random node.
    expect(new Command('TS.RANGE', ['foo', '0', '1']).getSlot()).toBeNull();
    const command = new KeyedCommand('TS.RANGE', 'foo', ['0', '1']);
    expect(command.name).toBe('TS.RANGE');
    expect(command.args).toEqual(['foo', '0', '1']);
    expect(command.getKeys()).toEqual(['foo']);
    expect(command.getSlot()).toBe(12182); // CLUSTER KEYSLOT foo
  });

  it('callOnKey sends it and answers with its reply', async () => {
    const sent: Command[] = [];
    const redis = {
      sendCommand(command: Command) {
        sent.push(command);
        command.resolve('OK');
        return command.promise;
      },
    } as unknown as RedisClient;
    await expect(callOnKey(redis, 'TS.CREATE', 'k', 'RETENTION', '0')).resolves.toBe('OK');
    expect(sent.map((c) => [c.name, ...c.args, c.getKeys()])).toEqual([['TS.CREATE', 'k', 'RETENTION', '0', ['k']]]);
  });

  it('queueOnKey adds it to a MULTI', () => {
    const redis = new Redis({ lazyConnect: true }); // never connects
    const tx = redis.multi();
    queueOnKey(tx, 'TS.MADD', 'k', '1', '2', 'k', '3', '4');
    expect(tx.length).toBe(2); // MULTI + TS.MADD
    redis.disconnect();
  });
});
