import { describe, expect, it } from '@jest/globals';
import { LuaScript } from './lua-script.js';
import type { RedisClient } from './redis.types.js';

/** A client stub recording the commands a script run sends, answering each from `answer`. */
function client(answer: (command: string) => unknown): { redis: RedisClient; sent: string[] } {
  const sent: string[] = [];
  const reply = (command: string) => async () => {
    sent.push(command);
    const a = answer(command);
    if (a instanceof Error) throw a;
    return a;
  };
  const redis = { evalsha: reply('evalsha'), eval: reply('eval'), evalsha_ro: reply('evalsha_ro'), eval_ro: reply('eval_ro') } as unknown as RedisClient;
  return { redis, sent };
}

describe('LuaScript', () => {
  it('runs a read-only script with EVALSHA_RO, loading it with EVAL_RO on NOSCRIPT', async () => {
    let loaded = false;
    const { redis, sent } = client((c) => (c === 'evalsha_ro' && !loaded ? new Error('NOSCRIPT No matching script') : c === 'eval_ro' ? ((loaded = true), 'r') : 'r'));
    const script = new LuaScript('return 1', true);
    expect(await script.run(redis, ['k'], [])).toBe('r');
    expect(await script.run(redis, ['k'], [])).toBe('r');
    expect(sent).toEqual(['evalsha_ro', 'eval_ro', 'evalsha_ro']);
  });

  it('on a server without EVALSHA_RO (Redis 6) or an ACL user denied it, uses EVALSHA from then on for that client', async () => {
    for (const refusal of ["ERR unknown command 'evalsha_ro', with args beginning with: 'abc' '1' 'k' ", "NOPERM User app has no permissions to run the 'evalsha_ro' command"]) {
      const { redis, sent } = client((c) => (c.endsWith('_ro') ? new Error(refusal) : 'r'));
      const script = new LuaScript('return 2', true);
      expect(await script.run(redis, ['k'], [])).toBe('r');
      expect(await script.run(redis, ['k'], [])).toBe('r');
      expect(sent).toEqual(['evalsha_ro', 'evalsha', 'evalsha']);
    }
  });

  it('passes other errors of a read-only run through, and runs other scripts with EVALSHA', async () => {
    const { redis, sent } = client((c) => (c === 'evalsha_ro' ? new Error('ERR Error running script: boom') : 'w'));
    await expect(new LuaScript('return 3', true).run(redis, ['k'], [])).rejects.toThrow('boom');
    expect(await new LuaScript('return 4').run(redis, ['k'], ['a'])).toBe('w');
    expect(sent).toEqual(['evalsha_ro', 'evalsha']);
  });
});
