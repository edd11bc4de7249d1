import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from './wait.js';

/**
 * Whether the Redis answering on `port` is process `pid`, and ready (PING answers PONG, not
 * -LOADING). A free port can be taken between freePort() and the spawn (CI runs three suites
 * side by side, each with private servers): the child then exits, and a bare PING would have
 * reached whatever else listens there.
 */
function servedBy(port: number, pid: number | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    let text = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('close', () => done(false)); // closed without an answer: not a Redis (no-op once resolved)
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (text.startsWith('-') || text.includes('\r\n-')) done(false); // -LOADING and the like: not ready yet
      else if (text.endsWith('+PONG\r\n')) done(new RegExp(`\r\nprocess_id:${pid}\r\n`).test(text));
    });
    socket.connect(port, '127.0.0.1', () => socket.write('INFO server\r\nPING\r\n'));
  });
}

/** Waits until `child`, a redis-server just spawned on `port`, serves there; throws at once if it exited. */
export function untilServing(child: ChildProcess, port: number, options?: { timeoutMs?: number; intervalMs?: number }): Promise<boolean> {
  return waitFor(
    `redis-server on port ${port}`,
    () => {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`redis-server exited at start (port ${port} taken?)`);
      return servedBy(port, child.pid);
    },
    options,
  );
}

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
    for (let attempt = 1; ; attempt++) {
      const server = new RedisServerProcess(await freePort());
      try {
        await server.start();
        return server;
      } catch (err) {
        await server.destroy();
        if (attempt === 5) throw err;
      }
    }
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
    await untilServing(this.child, this.port);
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
