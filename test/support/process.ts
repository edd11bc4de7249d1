import { ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { sleep, waitFor } from './wait.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BUILDS = join(ROOT, '.e2e-build');

/** Every file the build reads besides node_modules: src/ (specs too, cheap) and the build configs. */
function sourceHash(): string {
  const hash = createHash('sha256');
  const add = (path: string) => hash.update(relative(ROOT, path)).update('\0').update(readFileSync(path)).update('\0');
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else add(path);
    }
  };
  walk(join(ROOT, 'src'));
  for (const file of ['tsconfig.json', 'tsconfig.build.json', 'nest-cli.json', 'package-lock.json']) add(join(ROOT, file));
  return hash.digest('hex').slice(0, 16);
}

/**
 * The production build (`nest build`: tsc, the Swagger plugin, the assets) of the current src/,
 * for tests that need the real `node main.js` process (signals, exit codes, several instances).
 * Built into .e2e-build/<hash of the sources>/ inside the project (so node_modules resolves), once:
 * later calls, other Jest workers and later runs with the same sources reuse it; dist/ is never
 * touched. Returns the path of main.js.
 */
export async function builtApp(): Promise<string> {
  const hash = sourceHash();
  const out = join(BUILDS, hash);
  const main = join(out, 'main.js');
  const lock = `${out}.lock`;
  await mkdir(BUILDS, { recursive: true });
  for (;;) {
    if (existsSync(main)) return main;
    try {
      await mkdir(lock); // atomic: one builder per hash, the others wait for its result
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // A builder that died leaves its lock behind; a build takes well under 5 minutes.
      const age = Date.now() - (await stat(lock).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs;
      if (age > 5 * 60_000) await rm(lock, { recursive: true, force: true });
      await sleep(200);
      continue;
    }
    try {
      if (existsSync(main)) return main;
      const tmp = `${out}.tmp-${randomBytes(4).toString('hex')}`;
      const tsconfig = `${tmp}.tsconfig.json`;
      writeFileSync(tsconfig, JSON.stringify({ extends: './../tsconfig.build.json', compilerOptions: { outDir: tmp, rootDir: '../src' }, include: ['../src/**/*.ts'], exclude: ['../src/**/*.spec.ts'] }));
      try {
        // The Nest CLI reads --path relative to the working directory.
        await promisify(execFile)(process.execPath, [join(ROOT, 'node_modules/@nestjs/cli/bin/nest.js'), 'build', '--path', relative(ROOT, tsconfig)], { cwd: ROOT });
        await rename(tmp, out);
      } finally {
        rmSync(tsconfig, { force: true });
        rmSync(tmp, { recursive: true, force: true });
      }
      // Builds of older sources are of no use any more.
      for (const name of readdirSync(BUILDS)) if (!name.startsWith(hash)) rmSync(join(BUILDS, name), { recursive: true, force: true });
      return main;
    } finally {
      await rm(lock, { recursive: true, force: true });
    }
  }
}

/**
 * A running `node main.js` with exactly `env` (plus PATH) as its environment, so what a test
 * does not set is the app's default; its JSON log lines, raw output and exit are kept.
 */
export class AppProcess {
  readonly lines: Array<Record<string, unknown>> = [];
  /** stdout and stderr as they came, for failure messages. */
  output = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;

  /** `nodeArgs`: Node options before main.js (e.g. `--import` of a test fixture). */
  constructor(main: string, env: Record<string, string>, cwd = ROOT, nodeArgs: string[] = []) {
    this.child = spawn(process.execPath, [...nodeArgs, main], { cwd, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let buffered = '';
    this.child.stdout!.on('data', (d: Buffer) => {
      this.output += d.toString();
      buffered += d.toString();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        try {
          this.lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          this.lines.push({ msg: line, unparsed: true });
        }
      }
    });
    this.child.stderr!.on('data', (d: Buffer) => {
      this.output += d.toString();
      this.stderr += d.toString();
    });
    // 'close', not 'exit': the process may have exited before its last output has been read, and
    // callers read `lines` once it has exited (the shutdown test looks at the last ones).
    this.exited = new Promise((resolve) => this.child.once('close', (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.child.pid as number;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The base URL from the "Listening on …" line. */
  get url(): string | undefined {
    for (const l of this.lines) {
      const m = /^Listening on (http:\/\/[^ ]+)/.exec(typeof l.msg === 'string' ? l.msg : '');
      if (m) return m[1];
    }
    return undefined;
  }

  /** Resolves with the base URL once the app listens; fails at once if the process exits first. */
  ready(timeoutMs = 30_000): Promise<string> {
    return waitFor(
      `process ${this.pid} to listen`,
      () => {
        if (!this.alive) throw new Error(`process ${this.pid} exited before listening:\n${this.output}`);
        return this.url;
      },
      { timeoutMs },
    );
  }

  /** Sends `signal`; `exited` tells when and how it ended (once all of its output is in `lines`). */
  kill(signal: NodeJS.Signals): void {
    if (this.alive) this.child.kill(signal);
  }

  /** Test cleanup: SIGTERM, and SIGKILL if it is still running after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.alive) return;
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    this.kill('SIGTERM');
    await this.exited;
    clearTimeout(timer);
  }
}
