// A private nats-server on a free loopback port: for `ppos demo` when no NATS answers, and
// for tests that must restart a broker (never the machine's shared one).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../persistence/local-processes.js';

export function findNatsServer(): string | null {
  const candidates = (process.env.PATH ?? '').split(path.delimiter).concat(['/usr/sbin', '/usr/local/bin', '/usr/bin']);
  for (const dir of candidates) {
    const file = path.join(dir, 'nats-server');
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // keep looking
    }
  }
  return null;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export class PrivateNatsServer {
  private child: ChildProcess | undefined;
  private readonly storeDir = mkdtempSync(path.join(os.tmpdir(), 'ppos-nats-'));

  private constructor(
    readonly binary: string,
    readonly port: number,
    /** The server's configuration file's text (e.g. `max_payload: 16384`, or a whole shipped file). */
    private readonly config: string | undefined,
    /** Extra environment: the shipped configurations read their passwords from it. */
    private readonly env: Record<string, string>,
    /** The scheme clients should use (`tls` when the configuration requires TLS). */
    private readonly scheme: 'nats' | 'tls',
  ) {}

  static async start(options: { config?: string; env?: Record<string, string>; tls?: boolean } = {}): Promise<PrivateNatsServer> {
    const binary = findNatsServer();
    if (!binary) throw new Error('nats-server is not on PATH');
    // A free port can be taken by another process before the server binds it: try another.
    for (let attempt = 1; ; attempt += 1) {
      const server = new PrivateNatsServer(binary, await freePort(), options.config, options.env ?? {}, options.tls ? 'tls' : 'nats');
      try {
        await server.launch();
        return server;
      } catch (error) {
        rmSync(server.storeDir, { recursive: true, force: true });
        if (attempt >= 3 || !/address already in use/i.test((error as Error).message)) throw error;
      }
    }
  }

  get url(): string {
    return `${this.scheme}://127.0.0.1:${this.port}`;
  }

  private async launch(): Promise<void> {
    const args = ['-a', '127.0.0.1', '-p', String(this.port), '-js', '-sd', this.storeDir];
    if (this.config !== undefined) {
      const file = path.join(this.storeDir, 'nats-server.conf');
      writeFileSync(file, `${this.config}\n`);
      args.push('-c', file);
    }
    this.child = spawn(this.binary, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...this.env } });
    // The last of its log, to say why when it does not come up.
    let logTail = '';
    this.child.stderr?.on('data', (chunk: Buffer) => {
      logTail = (logTail + chunk.toString('utf8')).slice(-2_000);
    });
    const deadline = Date.now() + 10_000;
    while (!(await portOpen(this.port))) {
      if (this.child.exitCode !== null) throw new Error(`nats-server exited with ${this.child.exitCode}: ${logTail.trim().split('\n').slice(-3).join(' | ')}`);
      if (Date.now() > deadline) throw new Error('nats-server did not start listening within 10 s');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Kills the server (SIGKILL) and starts it again on the same port. */
  async restart(downMs = 0): Promise<void> {
    await this.kill();
    if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
    await this.launch();
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await once(child, 'exit');
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.storeDir, { recursive: true, force: true });
  }
}
