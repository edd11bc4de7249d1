import { ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort, waitFor } from './wait.js';

const run = promisify(execFile);

interface Node {
  port: number;
  process: ChildProcess;
  output: string;
}

/**
 * A throwaway Redis Cluster of `masters` redis-server processes (no replicas) on free ports of
 * 127.0.0.1, in a temp dir, built with `redis-cli --cluster create`. `stop()` kills every
 * process and removes the dir; `start()` does the same itself when it fails half way.
 */
export class LocalRedisCluster {
  private readonly nodes: Node[] = [];
  private dir = '';
  /** Last resort if the test process exits without stop() (e.g. a crash): no orphan servers. */
  private readonly killOnExit = () => this.nodes.forEach((n) => n.process.kill('SIGKILL'));

  private constructor(readonly password: string | undefined) {}

  /** Seed list for REDIS_CLUSTER_NODES. */
  get seeds(): string {
    return this.nodes.map((n) => `127.0.0.1:${n.port}`).join(',');
  }

  get ports(): number[] {
    return this.nodes.map((n) => n.port);
  }

  /** `password` (requirepass on every node) is optional. */
  static async start(masters = 3, password?: string): Promise<LocalRedisCluster> {
    const cluster = new LocalRedisCluster(password);
    try {
      await cluster.boot(masters);
      return cluster;
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }

  /** A standalone connection to one node (no cluster routing), for inspection. */
  connect(port: number): Redis {
    return new Redis({ host: '127.0.0.1', port, password: this.password, maxRetriesPerRequest: 1 });
  }

  async stop(): Promise<void> {
    process.removeListener('exit', this.killOnExit);
    await Promise.all(
      this.nodes.map(async ({ process: child }) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }),
    );
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }

  private async boot(masters: number): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), 'ibl-cluster-'));
    process.once('exit', this.killOnExit);
    const taken = new Set<number>();
    const pick = async () => {
      let port: number;
      do port = await freePort();
      while (taken.has(port));
      taken.add(port);
      return port;
    };
    for (let i = 0; i < masters; i++) {
      const port = await pick();
      const busPort = await pick(); // explicit: the default port + 10000 may be taken or out of range
      const child = spawn(
        'redis-server',
        [
          '--port', String(port),
          '--bind', '127.0.0.1',
          '--cluster-enabled', 'yes',
          '--cluster-port', String(busPort),
          '--cluster-config-file', join(this.dir, `nodes-${port}.conf`),
          '--cluster-node-timeout', '2000',
          '--dir', this.dir,
          '--save', '',
          '--appendonly', 'no',
          '--daemonize', 'no',
          ...(this.password ? ['--requirepass', this.password] : []),
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const node: Node = { port, process: child, output: '' };
      child.stdout?.on('data', (chunk: Buffer) => (node.output += chunk.toString()));
      child.stderr?.on('data', (chunk: Buffer) => (node.output += chunk.toString()));
      this.nodes.push(node);
    }
    await Promise.all(this.nodes.map((n) => this.waitUntil(n, 'accepting connections', () => /Ready to accept connections/.test(n.output))));
    await run('redis-cli', ['--cluster', 'create', ...this.nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], {
      timeout: 30_000,
      env: { ...process.env, ...(this.password ? { REDISCLI_AUTH: this.password } : {}) },
    });
    // Every node must see the whole cluster and every slot served before clients connect.
    await Promise.all(
      this.nodes.map(async (n) => {
        const redis = this.connect(n.port);
        try {
          let info = '';
          await this.waitUntil(n, 'cluster_state:ok', async () => {
            info = await redis.cluster('INFO');
            return /cluster_state:ok/.test(info) && /cluster_slots_ok:16384/.test(info) && new RegExp(`cluster_known_nodes:${masters}\\b`).test(info);
          });
          await redis.config('RESETSTAT'); // error counters start at zero for the tests
        } finally {
          redis.disconnect();
        }
      }),
    );
  }

  /** waitFor, failing at once when the node has exited, with the node's output either way. */
  private async waitUntil(node: Node, what: string, check: () => boolean | Promise<boolean>): Promise<void> {
    try {
      await waitFor(`${what} on port ${node.port}`, async () => {
        if (node.process.exitCode !== null) throw new Error(`redis-server on port ${node.port} exited`);
        return check();
      });
    } catch (err) {
      throw new Error(`${(err as Error).message}: ${node.output.trim().slice(-500)}`, { cause: err });
    }
  }
}
