import { ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Compiles src/ with tsc into a private folder inside the project (so node_modules resolves),
 * for tests that need the real `node main.js` process (signals, exit codes).
 */
export async function buildApp(): Promise<{ main: string; cleanup: () => void }> {
  const outDir = join(ROOT, '.e2e-build', randomBytes(4).toString('hex'));
  await promisify(execFile)(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', outDir], { cwd: ROOT });
  // What nest-cli.json copies as assets (non-TypeScript files under src/, e.g. the dashboard page).
  cpSync(join(ROOT, 'src'), outDir, { recursive: true, filter: (src) => !/\.ts$/.test(src) });
  return { main: join(outDir, 'main.js'), cleanup: () => rmSync(outDir, { recursive: true, force: true }) };
}

/** A running `node main.js`, with its JSON log lines and exit. */
export class AppProcess {
  readonly lines: Array<Record<string, unknown>> = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;

  constructor(main: string, env: Record<string, string>, cwd = ROOT) {
    this.child = spawn(process.execPath, [main], { cwd, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let buffered = '';
    this.child.stdout!.on('data', (d: Buffer) => {
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
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  /** The base URL from the "Listening on …" line. */
  get url(): string | undefined {
    for (const l of this.lines) {
      const m = /^Listening on (http:\/\/[^ ]+)/.exec(typeof l.msg === 'string' ? l.msg : '');
      if (m) return m[1];
    }
    return undefined;
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** Kills it if still running (test cleanup). */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }
}
