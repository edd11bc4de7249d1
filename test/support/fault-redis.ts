import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Redis } from 'ioredis';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { untilServing } from './redis-server.js';
import { freePort, waitFor } from './wait.js';

/**
 * A private `redis-server` child process (SIGKILLed rather than shut down, unlike
 * RedisServerProcess in redis-server.ts) on 127.0.0.1 and a free port, for fault injection:
 * tests kill it and start it again on the same port. With `persist`, every write is appended
 * to an AOF (fsync always) in a temp dir, so data written before a kill is there after the
 * restart, as on a production Redis with persistence.
 */
export class FaultRedisServer {
  port = 0;
  private child: ChildProcess | null = null;
  private readonly dir = mkdtempSync(join(tmpdir(), 'ibl-redis-'));

  constructor(private readonly persist: boolean) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== null;
  }

  async start(): Promise<this> {
    for (let attempt = 0; attempt < 5 && !this.child; attempt++) {
      if (this.port === 0 || attempt > 0) this.port = await freePort();
      await this.spawnAndWait().catch(() => undefined);
    }
    if (!this.child) throw new Error('redis-server did not start');
    return this;
  }

  /** Starts again on the same port (after kill). */
  async restart(): Promise<void> {
    await this.spawnAndWait();
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    await exited;
  }

  /**
   * Makes the server refuse writes and PING with MISCONF, as after a failed RDB save on a full
   * disk: its directory goes away, a save point is set, and a BGSAVE fails.
   */
  async failSaves(): Promise<void> {
    rmSync(this.dir, { recursive: true, force: true });
    const client = new Redis(this.url, { maxRetriesPerRequest: 0 });
    try {
      await client.config('SET', 'save', '3600 1');
      await client.bgsave();
      await waitFor('a failed BGSAVE', async () => /rdb_last_bgsave_status:err/.test(await client.info('persistence')));
    } finally {
      client.disconnect();
    }
  }

  async stop(): Promise<void> {
    await this.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async spawnAndWait(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--dir', this.dir, '--daemonize', 'no', '--loglevel', 'warning'];
    args.push(...(this.persist ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']));
    const child = spawn('redis-server', args, { stdio: 'ignore' });
    try {
      await untilServing(child, this.port, { timeoutMs: 5000, intervalMs: 50 });
    } catch (err) {
      child.kill('SIGKILL');
      throw err;
    }
    this.child = child;
  }
}
