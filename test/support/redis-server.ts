import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, waitFor } from './wait.js';

/**
 * A throwaway redis-server child process on its own port and temp directory, for tests that
 * take Redis away and bring it back: `stop()` shuts it down saving its data (clients see the
 * connection drop), `start()` again reuses the port and the data; `destroy()` kills it and
 * deletes the directory.
 */
export class RedisServerProcess {
  private child?: ChildProcess;
  private readonly dir = mkdtempSync(join(tmpdir(), 'notify-redis-'));

  private constructor(readonly port: number) {}

  static async start(): Promise<RedisServerProcess> {
    const server = new RedisServerProcess(await freePort());
    await server.start();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '', '--shutdown-on-sigterm', 'save', '--appendonly', 'no', '--protected-mode', 'no'],
      { stdio: 'ignore' },
    );
    const probe = new Redis(this.url, { lazyConnect: true, retryStrategy: () => 20, maxRetriesPerRequest: 0 });
    probe.on('error', () => undefined);
    try {
      await waitFor(`redis-server on port ${this.port}`, () => probe.ping().then(() => true, () => false));
    } finally {
      probe.disconnect();
    }
  }

  /** SIGTERM: every connection drops, the data set is saved for the next start(). */
  async stop(): Promise<void> {
    const exited = this.exited();
    this.child?.kill('SIGTERM');
    await exited;
  }

  async destroy(): Promise<void> {
    const exited = this.exited();
    this.child?.kill('SIGKILL');
    await exited;
    rmSync(this.dir, { recursive: true, force: true });
  }

  private exited(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise<void>((resolve) => child.once('exit', () => resolve()));
  }
}
