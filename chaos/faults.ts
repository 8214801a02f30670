// Faults on a seeded schedule: which fault, on which node, how long it lasts and the pause
// before the next all come from the seed, so a failing run is replayed from its printed seed
// (the exact instants a fault lands inside the workload depend on real processes and timing).
// One fault at a time: each is lifted, and the system answers again, before the next one.
import pg from 'pg';
import type { PrivateNatsServer } from '../src/nats-server.js';
import { Random } from '../src/random.js';
import type { ChaosNode, NodeSet } from './nodes.js';

export const FAULT_KINDS = ['sigkill', 'pg_terminate', 'pg_refuse', 'nats_restart', 'sigstop', 'db_cut'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];
/** The faults a run injects: a database cut only with several databases (with one it is pg_refuse). */
export const faultKindsFor = (databases: number): readonly FaultKind[] => (databases > 1 ? FAULT_KINDS : FAULT_KINDS.filter((kind) => kind !== 'db_cut'));

export interface PlannedFault {
  readonly kind: FaultKind;
  /** Pause before it, after the previous fault was lifted and answered. */
  readonly gapMs: number;
  readonly node: number;
  /** How long the database refuses (one node's, or one database for every node, refusing or silent), the broker is down, or the node is paused. */
  readonly durationMs: number;
  /**
   * Aim at the node that runs this journal follower (a projection or the export) instead,
   * so the fault lands on its batches: killed, paused, or cut from PostgreSQL mid-batch.
   */
  readonly atFollower: string | null;
  /** A database cut that goes silent (connections kept open, nothing answered) instead of refusing. */
  readonly silent?: boolean;
}

const FOLLOWERS = ['stock', 'workorders', 'export'] as const;

export interface FaultRecord {
  readonly kind: FaultKind;
  readonly node: string;
  readonly durationMs: number;
  /** From the fault being lifted (or the kill) until a journaled command was acknowledged again. */
  recoveryMs: number | null;
  /** performance.now() when it was lifted. */
  liftedAt: number | null;
  detail: string;
  /** A database cut: commands to actors of the other databases meanwhile, and how many were refused (must be none). */
  elsewhere?: { sent: number; refused: number };
}

const WEIGHTS: Record<FaultKind, number> = { sigkill: 0.38, pg_terminate: 0.2, pg_refuse: 0.12, nats_restart: 0.1, sigstop: 0.2, db_cut: 0 };
/** With several databases a database cut takes a share of its own, the others' weights scaled down. */
const DB_CUT_WEIGHT = 0.15;

/** The first five faults are one of each kind (every run, however short, sees them all). */
/**
 * `pauseOverMs`: a paused node stays paused longer than this (the longest request timeout);
 * `pauseExtraMs`: by up to this much more (past a shard lease, with several nodes, so the
 * paused owner is fenced out and must not append when it wakes).
 */
export function planFaults(seed: number, count: number, nodes: number, pauseOverMs: number, pauseExtraMs = 3_500, databases = 1): PlannedFault[] {
  const random = new Random(seed * 31 + 7);
  const possible = faultKindsFor(databases);
  const weight = (kind: FaultKind): number => (databases > 1 ? (kind === 'db_cut' ? DB_CUT_WEIGHT : WEIGHTS[kind] * (1 - DB_CUT_WEIGHT)) : WEIGHTS[kind]);
  const kinds: FaultKind[] = [...possible];
  for (let i = kinds.length - 1; i > 0; i -= 1) {
    const j = random.int(0, i);
    [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
  }
  while (kinds.length < count) {
    let roll = random.next();
    const kind = possible.find((k) => (roll -= weight(k)) < 0) ?? 'sigkill';
    kinds.push(kind);
  }
  return kinds.slice(0, count).map((kind) => ({
    kind,
    gapMs: random.int(500, 3_500),
    node: random.int(0, nodes - 1),
    durationMs:
      kind === 'pg_refuse' || kind === 'db_cut' ? random.int(1_500, 5_000) : kind === 'nats_restart' ? random.int(0, 2_000) : kind === 'sigstop' ? pauseOverMs + random.int(500, pauseExtraMs) : 0,
    atFollower: kind !== 'nats_restart' && kind !== 'db_cut' && random.chance(0.5) ? random.pick(FOLLOWERS) : null,
    ...(kind === 'db_cut' ? { silent: random.chance(0.5) } : {}),
  }));
}

export interface InjectorOptions {
  readonly nodes: NodeSet;
  readonly nats: PrivateNatsServer;
  /** Admin access to the run's databases, around the proxies, in layout order (the first holds the followers' rows). */
  readonly admins: readonly pg.Pool[];
  /** Resolves once a journaled command is acknowledged again. */
  readonly probe: () => Promise<boolean>;
  /** With several databases: one command to an actor outside the last database, answered within the normal timeout. */
  readonly probeElsewhere?: () => Promise<boolean>;
  readonly log: (line: string) => void;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class FaultInjector {
  readonly done: FaultRecord[] = [];

  constructor(private readonly options: InjectorOptions) {}

  /** Runs planned faults until `until` says stop. */
  async run(plan: readonly PlannedFault[], keepGoing: () => boolean): Promise<void> {
    for (const fault of plan) {
      await sleep(fault.gapMs);
      if (!keepGoing()) return;
      await this.inject(fault);
    }
  }

  /** The node that owns a follower now, if one does. */
  private async followerOwner(name: string): Promise<ChaosNode | undefined> {
    const row = await this.options.admins[0]!.query<{ owner: string | null }>('SELECT owner FROM ppos_projections WHERE name = $1', [name]).catch(() => null);
    const owner = row?.rows[0]?.owner;
    return this.options.nodes.nodes.find((n) => n.id === owner);
  }

  private async inject(fault: PlannedFault): Promise<void> {
    const owner = fault.atFollower ? await this.followerOwner(fault.atFollower) : undefined;
    const node = owner ?? this.options.nodes.nodes[fault.node]!;
    const record: FaultRecord = { kind: fault.kind, node: node.id, durationMs: fault.durationMs, recoveryMs: null, liftedAt: null, detail: owner ? `runs ${fault.atFollower}` : '' };
    this.done.push(record);
    let lifted: number;
    switch (fault.kind) {
      case 'sigkill': {
        lifted = performance.now();
        await this.options.nodes.crash(node);
        await this.options.nodes.launch(node);
        record.detail = [record.detail, `restart ${node.starts - 1}`].filter(Boolean).join(', ');
        break;
      }
      case 'pg_terminate': {
        record.detail = [record.detail, await this.terminateBackends(node)].filter(Boolean).join(', ');
        lifted = performance.now();
        break;
      }
      case 'pg_refuse': {
        for (const proxy of node.proxies) proxy.refuse();
        await sleep(fault.durationMs);
        for (const proxy of node.proxies) proxy.restore();
        lifted = performance.now();
        break;
      }
      case 'db_cut': {
        // The last database goes away for every node; the actors of the others must go on.
        const cut = this.options.nodes.nodes.map((n) => n.proxies[n.proxies.length - 1]!);
        for (const proxy of cut) {
          if (fault.silent) proxy.freeze();
          else proxy.refuse();
        }
        const elsewhere = { sent: 0, refused: 0 };
        const until = performance.now() + fault.durationMs;
        while (performance.now() < until) {
          elsewhere.sent += 1;
          if (!(await this.options.probeElsewhere!())) elsewhere.refused += 1;
          await sleep(100);
        }
        for (const proxy of cut) proxy.restore();
        lifted = performance.now();
        record.elsewhere = elsewhere;
        record.detail = `database ${node.proxies.length} ${fault.silent ? 'silent' : 'refusing'} for every node; ${elsewhere.sent - elsewhere.refused} of ${elsewhere.sent} commands elsewhere answered`;
        break;
      }
      case 'nats_restart': {
        await this.options.nats.restart(fault.durationMs);
        lifted = performance.now();
        break;
      }
      case 'sigstop': {
        this.options.nodes.pause(node);
        await sleep(fault.durationMs);
        this.options.nodes.resume(node);
        lifted = performance.now();
        break;
      }
    }
    record.liftedAt = lifted;
    this.options.log(`fault ${this.done.length}: ${fault.kind} on ${node.id}${fault.durationMs ? ` for ${fault.durationMs} ms` : ''}${record.detail ? ` (${record.detail})` : ''}`);
    if (await this.options.probe()) record.recoveryMs = Math.round(performance.now() - lifted);
  }

  /**
   * pg_terminate_backend on the node's connections, aiming for one that is running a statement
   * (an append in flight: its commit is then ambiguous to the node), else whatever it holds.
   */
  private async terminateBackends(node: ChaosNode): Promise<string> {
    const { admins } = this.options;
    const deadline = Date.now() + 1_500;
    let busy = 0;
    let total = 0;
    for (;;) {
      const rows = (
        await Promise.all(
          admins.map((admin) =>
            admin.query<{ pid: number; state: string }>('SELECT pid, state FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1', [
              node.applicationName,
            ]),
          ),
        )
      ).flatMap((result) => result.rows);
      const active = rows.filter((r) => r.state === 'active');
      if (active.length > 0 || Date.now() > deadline) {
        const killed = (
          await Promise.all(
            admins.map((admin) =>
              admin.query<{ ok: boolean }>('SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1', [
                node.applicationName,
              ]),
            ),
          )
        ).flatMap((result) => result.rows);
        busy = active.length;
        total = killed.filter((r) => r.ok).length;
        break;
      }
      await sleep(5);
    }
    return `${total} backend(s) terminated, ${busy} mid-statement`;
  }
}
