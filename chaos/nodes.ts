// The `ppos start` children under chaos: each node reaches each database through its own proxy
// (so its PostgreSQL can "go down" for it alone, or one database for everyone) under its own application_name (so its backends can be
// terminated alone), and is killed, paused and restarted by the fault injector.
import { NodeProcess } from '../src/spawn.js';
import { ChaosProxy } from './tcp-proxy.js';

/**
 * Several nodes need fenced single ownership per actor (shard leases and epochs, issue 6);
 * without it two nodes would both take every command from the queue group. Set to false to
 * refuse `--nodes K > 1` on a build without it.
 */
export const MULTI_NODE_READY = true;

export interface NodeSetOptions {
  readonly count: number;
  readonly natsUrl: string;
  /** Direct URLs of the run's databases, in layout order; each node gets them through proxies of its own. */
  readonly databaseUrls: readonly string[];
  readonly args: readonly string[];
  readonly env: Record<string, string>;
  /** Each stderr line of each node (pino JSON). */
  readonly onLog: (nodeId: string, line: string) => void;
  /** A node exited without the driver killing or stopping it (it is started again). */
  readonly onUnexpectedExit: (nodeId: string, code: number | null) => void;
}

export interface ChaosNode {
  readonly index: number;
  readonly id: string;
  /** application_name of its PostgreSQL connections. */
  readonly applicationName: string;
  /** One per database, in layout order. */
  readonly proxies: readonly ChaosProxy[];
  process: NodeProcess | null;
  paused: boolean;
  /** Set while the driver itself takes the process down, so its exit is expected. */
  expectingExit: boolean;
  starts: number;
}

export class NodeSet {
  readonly nodes: ChaosNode[] = [];

  constructor(private readonly options: NodeSetOptions) {}

  async start(): Promise<void> {
    for (let index = 0; index < this.options.count; index += 1) {
      const id = `chaos-n${index + 1}`;
      const proxies = await Promise.all(
        this.options.databaseUrls.map((url) => {
          const target = new URL(url);
          return ChaosProxy.start(target.hostname, Number(target.port || 5432));
        }),
      );
      this.nodes.push({ index, id, applicationName: `ppos-${id}`, proxies, process: null, paused: false, expectingExit: false, starts: 0 });
    }
    await Promise.all(this.nodes.map((node) => this.launch(node)));
  }

  /** Starts the node's process and resolves once it logged "node started". */
  async launch(node: ChaosNode): Promise<void> {
    node.expectingExit = false;
    node.paused = false;
    node.starts += 1;
    const child = new NodeProcess({
      nats: this.options.natsUrl,
      databaseUrl: this.options.databaseUrls.map((url, i) => node.proxies[i]!.urlFor(url, node.applicationName)).join(','),
      nodeId: node.id,
      args: this.options.args,
      env: this.options.env,
      onLog: (line) => this.options.onLog(node.id, line),
    });
    node.process = child;
    void child.exited.then((code) => {
      if (node.process !== child || node.expectingExit) return;
      this.options.onUnexpectedExit(node.id, code);
      // Back up at once, so one bug does not stall the rest of the run.
      this.launch(node).catch(() => undefined);
    });
    await child.ready;
  }

  /** SIGKILL: no drain, no goodbye. */
  async crash(node: ChaosNode): Promise<void> {
    const child = node.process;
    if (!child) return;
    node.expectingExit = true;
    if (node.paused) this.signal(node, 'SIGCONT');
    node.paused = false;
    await child.crash();
  }

  /** SIGSTOP: the process is alive, holds its NATS and PostgreSQL connections, and answers nothing. */
  pause(node: ChaosNode): void {
    if (node.process && !node.paused) {
      node.paused = true;
      this.signal(node, 'SIGSTOP');
    }
  }

  resume(node: ChaosNode): void {
    if (node.paused) {
      node.paused = false;
      this.signal(node, 'SIGCONT');
    }
  }

  /** SIGTERM to every node (they drain); the exit codes. */
  async stopAll(): Promise<(number | null)[]> {
    return Promise.all(
      this.nodes.map(async (node) => {
        this.resume(node);
        node.expectingExit = true;
        return node.process ? node.process.stop() : null;
      }),
    );
  }

  /** Last resort, also on failure: nothing stays paused, nothing stays running. */
  async destroy(): Promise<void> {
    for (const node of this.nodes) {
      this.resume(node);
      node.expectingExit = true;
    }
    await Promise.all(this.nodes.map((node) => node.process?.crash()));
    await Promise.all(this.nodes.flatMap((node) => node.proxies.map((proxy) => proxy.close())));
  }

  /** Synchronous, for a process 'exit' handler. */
  destroySync(): void {
    for (const node of this.nodes) {
      const pid = node.process?.pid;
      if (pid === undefined || node.process?.child.exitCode !== null || node.process?.child.signalCode !== null) continue;
      try {
        process.kill(pid, 'SIGCONT');
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  private signal(node: ChaosNode, signal: NodeJS.Signals): void {
    const pid = node.process?.pid;
    if (pid === undefined) return;
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}
