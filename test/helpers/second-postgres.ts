// A PostgreSQL server process of the test's own (the embedded binaries, a temporary cluster), so
// a test can stop one database's server for real and start it again where its clients look
// for it, while the machine's shared server goes on.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../persistence/embedded.js';
import { freePort } from '../../persistence/local-processes.js';

export class SecondPostgres {
  private constructor(
    private readonly home: string,
    private readonly port: number,
    private server: EmbeddedPostgres,
  ) {}

  static async start(): Promise<SecondPostgres> {
    const home = mkdtempSync(path.join(os.tmpdir(), 'ppos-second-pg-'));
    // The server runs as `postgres` when the tests run as root: let it in, so the cluster stays here.
    chmodSync(home, 0o755);
    const port = await freePort();
    const server = await startEmbeddedPostgres({ dataDir: path.join(home, 'pgdata'), port });
    return new SecondPostgres(home, port, server);
  }

  /** Its database `ppos`, as a URL with the password. */
  get url(): string {
    return this.server.url;
  }

  /** Stops the server process (fast shutdown: open connections are cut). */
  async stop(): Promise<void> {
    await this.server.stop();
  }

  /** Starts it again on the same port and data. */
  async restart(): Promise<void> {
    this.server = await startEmbeddedPostgres({ dataDir: path.join(this.home, 'pgdata'), port: this.port });
  }

  async remove(): Promise<void> {
    await this.server.stop();
    rmSync(this.home, { recursive: true, force: true });
  }
}
