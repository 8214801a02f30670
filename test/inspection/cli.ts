// Running the built `ppos` CLI as a user would: a child process, its stdout, stderr and exit code.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { CLI_PATH } from '../../src/spawn.js';

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliTarget {
  readonly natsUrl: string;
  readonly databaseUrl: string;
}

/** The target's URLs as an operator's environment carries them: never on the command line. */
const environment = (target: CliTarget): NodeJS.ProcessEnv => ({
  ...process.env,
  PPOS_LOG_LEVEL: 'warn',
  PPOS_NATS_URL: target.natsUrl,
  PPOS_DATABASE_URL: target.databaseUrl,
});

export async function runCli(target: CliTarget, args: readonly string[]): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI_PATH, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: environment(target) });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

export async function runCliJson<T = Record<string, unknown>>(target: CliTarget, args: readonly string[]): Promise<T> {
  const result = await runCli(target, [...args, '--json']);
  if (result.code !== 0) throw new Error(`ppos ${args.join(' ')} exited ${result.code}: ${result.stderr}${result.stdout}`);
  return JSON.parse(result.stdout) as T;
}

/** A long-running CLI command (watch, dashboard): its output line by line, as it comes. */
export class CliProcess {
  readonly child: ChildProcess;
  readonly stdoutLines: string[] = [];
  readonly stderrLines: string[] = [];
  readonly exited: Promise<number | null>;
  private waiters: (() => void)[] = [];

  constructor(target: CliTarget, args: readonly string[]) {
    this.child = spawn(process.execPath, [CLI_PATH, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: environment(target) });
    this.exited = once(this.child, 'close').then(([code]) => code as number | null);
    const split = (stream: NodeJS.ReadableStream, into: string[]): void => {
      let buffered = '';
      stream.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('utf8');
        let newline = buffered.indexOf('\n');
        while (newline >= 0) {
          into.push(buffered.slice(0, newline));
          buffered = buffered.slice(newline + 1);
          newline = buffered.indexOf('\n');
        }
        this.wake();
      });
    };
    split(this.child.stdout!, this.stdoutLines);
    split(this.child.stderr!, this.stderrLines);
    void this.exited.then(() => this.wake());
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves once `ready()` holds; rejects if the process exits first or `timeoutMs` passes. */
  async waitFor(what: string, ready: () => boolean, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        if (ready()) return;
        throw new Error(`ppos exited (${this.child.exitCode ?? this.child.signalCode}) before ${what}; stderr: ${this.stderrLines.join('\n')}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`gave up waiting for ${what}; stdout: ${this.stdoutLines.join('\n')}; stderr: ${this.stderrLines.join('\n')}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGINT'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}
