// Running `ppos start` as a child process: the demo, the crash tests and the chaos suite
// kill and restart real node processes, never in-process fakes.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { natsEnvironment, natsSettings, type NatsSettings } from './nats.js';

const here = fileURLToPath(import.meta.url);
/** The built CLI; from TypeScript sources (tests), the build `npm test` makes first. */
export const CLI_PATH = here.endsWith('.ts')
  ? path.resolve(path.dirname(here), '..', 'dist', 'src', 'cli.js')
  : path.join(path.dirname(here), 'cli.js');

export interface NodeProcessOptions {
  /** Settings with credentials and TLS, or a bare URL. */
  readonly nats: NatsSettings | string;
  /** Unset: the node runs the embedded PostgreSQL (in `--data-dir`, if given in `args`). */
  readonly databaseUrl?: string;
  readonly nodeId: string;
  readonly args?: readonly string[];
  readonly env?: Record<string, string>;
  /** Receives each stderr line (pino JSON) of the node. */
  readonly onLog?: (line: string) => void;
}

export class NodeProcess {
  readonly child: ChildProcess;
  readonly ready: Promise<void>;
  readonly exited: Promise<number | null>;
  readonly startedAt = performance.now();

  constructor(readonly options: NodeProcessOptions) {
    const nats = typeof options.nats === 'string' ? natsSettings({ nats: options.nats }, {}) : options.nats;
    // URLs and credentials go in the environment, never on the command line (anyone on the
    // machine can read a process's arguments in /proc).
    const connection: Record<string, string> = {
      ...natsEnvironment(nats),
      ...(options.databaseUrl === undefined ? {} : { PPOS_DATABASE_URL: options.databaseUrl }),
    };
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('PPOS_NATS_') && key !== 'PPOS_DATABASE_URL'));
    this.child = spawn(process.execPath, [CLI_PATH, 'start', '--node', options.nodeId, ...(options.args ?? [])], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...inherited, ...connection, ...options.env },
    });
    this.exited = once(this.child, 'exit').then(([code]) => code as number | null);
    this.ready = new Promise<void>((resolve, reject) => {
      let buffered = '';
      let seen = false;
      this.child.stderr!.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('utf8');
        let newline = buffered.indexOf('\n');
        while (newline >= 0) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          options.onLog?.(line);
          if (!seen && line.includes('"msg":"node started"')) {
            seen = true;
            resolve();
          }
          newline = buffered.indexOf('\n');
        }
      });
      void this.exited.then((code) => {
        if (!seen) reject(new Error(`node ${options.nodeId} exited with ${code} before it was ready`));
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** SIGKILL: no drain, no goodbye; resolves when the process is gone. */
  async crash(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM: the node drains and exits 0. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    this.child.kill('SIGTERM');
    return this.exited;
  }
}
