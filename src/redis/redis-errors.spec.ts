import { isRedisUnavailableError, redisErrorSummary } from './redis-errors.js';

const reply = (message: string, previousErrors?: Error[]) => Object.assign(new Error(message), { name: 'ReplyError', ...(previousErrors ? { previousErrors } : {}) });

describe('isRedisUnavailableError', () => {
  it('counts replies that mean Redis cannot serve now, not those that say the command is wrong', () => {
    expect(isRedisUnavailableError(reply('BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.'))).toBe(true);
    expect(isRedisUnavailableError(reply('LOADING Redis is loading the dataset in memory'))).toBe(true);
    expect(isRedisUnavailableError(reply('WRONGTYPE Operation against a key holding the wrong kind of value'))).toBe(false);
    expect(isRedisUnavailableError(reply('MISCONF Redis is configured to save RDB snapshots, but it\'s currently unable to persist to disk.'))).toBe(true);
    expect(isRedisUnavailableError(reply('NOAUTH Authentication required.'))).toBe(true);
  });

  it('counts a script refused a key whose slot is being migrated away', () => {
    expect(isRedisUnavailableError(reply('ERR Script attempted to access a non local key in a cluster node script: 6c3f…, on @user_script:176.'))).toBe(true);
  });

  it('counts an aborted MULTI whose queued commands were refused that way (as Redis 7 and ioredis report it)', () => {
    const busy = 'BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.';
    expect(isRedisUnavailableError(reply(`EXECABORT Transaction discarded because of: ${busy}`, [reply(busy), reply(busy)]))).toBe(true);
    // Older servers' wording names no cause: the queued errors tell.
    expect(isRedisUnavailableError(reply('EXECABORT Transaction discarded because of previous errors.', [reply(busy)]))).toBe(true);
    const wrong = "ERR unknown command 'TS.RANGE'";
    expect(isRedisUnavailableError(reply(`EXECABORT Transaction discarded because of: ${wrong}`, [reply(wrong)]))).toBe(false);
  });
});

describe('redisErrorSummary', () => {
  it('names an error reply by its code only, and keeps the client\'s own errors', () => {
    expect(redisErrorSummary(reply('MISCONF Redis is configured to save RDB snapshots in /var/lib/redis'))).toBe('Redis refused the command (MISCONF)');
    expect(redisErrorSummary(reply('something odd'))).toBe('Redis refused the command');
    expect(redisErrorSummary(new Error('Connection is closed.'))).toBe('Connection is closed.');
  });
});
