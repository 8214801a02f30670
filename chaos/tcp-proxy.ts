// A TCP proxy between a node and PostgreSQL that the chaos driver and the outage tests control:
// `refuse()` (alias `cut()`) resets every open connection and refuses new ones (a database that
// is down), `freeze()` stops carrying bytes without closing anything (a database gone silent),
// `restore()` lets them through again. The machine's shared PostgreSQL is never touched.
import net from 'node:net';

export class ChaosProxy {
  private readonly sockets = new Set<net.Socket>();
  private refusing = false;
  private frozen = false;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(targetHost: string, targetPort: number): Promise<ChaosProxy> {
    let proxy: ChaosProxy | undefined;
    const server = net.createServer((downstream) => proxy!.accept(downstream, targetHost, targetPort));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    if (typeof address !== 'object' || address === null) throw new Error('proxy has no port');
    proxy = new ChaosProxy(server, address.port);
    return proxy;
  }

  /** The same database URL through this proxy, its connections named `applicationName` in pg_stat_activity if given. */
  urlFor(databaseUrl: string, applicationName?: string): string {
    const url = new URL(databaseUrl);
    url.hostname = '127.0.0.1';
    url.port = String(this.port);
    // node-postgres lets the connection string's parameters win over its code defaults.
    if (applicationName !== undefined) url.searchParams.set('application_name', applicationName);
    return url.toString();
  }

  /** Open client connections (each has two sockets: client side and PostgreSQL side). */
  get connections(): number {
    return this.sockets.size / 2;
  }

  cut(): void {
    this.refuse();
  }

  get isRefusing(): boolean {
    return this.refusing;
  }

  /** Every connection reset, new ones refused until `restore`. */
  refuse(): void {
    this.refusing = true;
    for (const socket of this.sockets) {
      try {
        socket.resetAndDestroy();
      } catch {
        socket.destroy();
      }
    }
    this.sockets.clear();
  }

  /**
   * Every connection, open and new, stops carrying bytes without being closed: a database that
   * went silent (a frozen server, a network dropping packets), the case a reset cannot show.
   */
  freeze(): void {
    this.frozen = true;
    for (const socket of this.sockets) socket.pause();
  }

  restore(): void {
    this.refusing = false;
    if (this.frozen) {
      this.frozen = false;
      for (const socket of this.sockets) socket.resume();
    }
  }

  async close(): Promise<void> {
    this.refuse();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(downstream: net.Socket, host: string, port: number): void {
    if (this.refusing) {
      downstream.resetAndDestroy();
      return;
    }
    const upstream = net.connect(port, host);
    for (const [from, to] of [
      [downstream, upstream],
      [upstream, downstream],
    ] as const) {
      this.sockets.add(from);
      from.pipe(to);
      if (this.frozen) from.pause();
      from.on('error', () => to.destroy());
      from.on('close', () => {
        this.sockets.delete(from);
        to.destroy();
      });
    }
  }
}
