// Recovery evidence (CONTRACT.md section 6, issue 4): `ppos verify` against a live node catches
// an actor whose memory differs from what its journal replays to, and a node that starts logs
// one evidence record for the actors it recovered, naming a tampered snapshot it skipped.
import type { AnyMachineSnapshot } from 'xstate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inventory } from '../../actors/inventory.js';
import { loadState } from '../../runtime/recovery.js';
import type { EvidenceRecord } from '../../runtime/verify.js';
import type { NodeRecoveryEvidence } from '../../runtime/recovery-evidence.js';
import { PposClient } from '../../src/client.js';
import type { PrivateNatsServer } from '../../src/nats-server.js';
import type { RunningNode } from '../../src/node.js';
import { NodeProcess } from '../../src/spawn.js';
import { blockAppend } from '../helpers/blocker.js';
import { runCli } from '../helpers/cli.js';
import { startTestNode } from '../helpers/node.js';
import { createTestDatabase, startNats, type TestDatabase } from '../helpers/services.js';
import { waitFor } from '../helpers/wait.js';

let db: TestDatabase;
let nats: PrivateNatsServer;
let client: PposClient;

beforeAll(async () => {
  [db, nats] = await Promise.all([createTestDatabase(), startNats()]);
  client = await PposClient.connect(nats.url);
});

afterAll(async () => {
  await client?.close();
  await nats?.stop();
  await db?.drop();
});

/** The private memory of a live actor host, reached around TypeScript to plant a bug. */
interface HostInternals {
  state: AnyMachineSnapshot;
  seqValue: number;
}

const verify = async (...args: string[]): Promise<{ code: number | null; record: EvidenceRecord; stderr: string }> => {
  const result = await runCli(['verify', ...args], { PPOS_DATABASE_URL: db.url, PPOS_NATS_URL: nats.url });
  return { code: result.code, record: JSON.parse(result.stdout) as EvidenceRecord, stderr: result.stderr };
};

describe('ppos verify against a live node', () => {
  let node: RunningNode;

  beforeAll(async () => {
    node = await startTestNode(nats.url, db.url);
  });

  afterAll(async () => {
    await node?.stop();
  });

  const receive = async (id: string, qty: number): Promise<void> => {
    expect(await client.send('inventory', id, 'Receive', { qty })).toMatchObject({ ok: true });
  };

  it('is trusted and says it compared live state when memory equals the replay', async () => {
    await receive('live-ok', 10);
    await receive('live-ok', 5);
    const { code, record, stderr } = await verify('--all');
    expect(record.reconciliation_failures).toEqual([]);
    expect(record.checks).toContain('live_state_matches_replay');
    expect(record.confidence_status).toBe('trusted');
    expect(code).toBe(0);
    expect(stderr).toMatch(/live node/);
  });

  it('is suspect, naming live_state_matches_replay, when an actor holds memory its journal does not replay to', async () => {
    await receive('live-bad', 10);
    const host = node.registry.activeHost({ kind: 'inventory', id: 'live-bad' })!.host;
    const internals = host as unknown as HostInternals;
    const honest = internals.state;
    internals.state = { ...honest, context: { ...(honest.context as object), onHand: (honest.context as { onHand: number }).onHand + 5 } } as never;

    const { code, record } = await verify('--all');
    expect(record.confidence_status).toBe('suspect');
    expect(record.reconciliation_failures).toEqual([
      expect.objectContaining({ check: 'live_state_matches_replay', actor: 'inventory/live-bad' }),
    ]);
    expect(code).toBe(1);
    // One actor asked for: the same finding.
    expect((await verify('inventory', 'live-bad')).record.reconciliation_failures).toHaveLength(1);
    // The journal alone is fine: the bug is in memory only.
    const journalOnly = await verify('--all', '--no-live');
    expect(journalOnly.record.checks).not.toContain('live_state_matches_replay');
    expect(journalOnly.record.confidence_status).toBe('trusted');
    node.registry.activeHost({ kind: 'inventory', id: 'live-bad' })!.host.broken = true; // not reused below
    internals.state = honest;
  });

  it('flags a live actor that stays behind its journal', async () => {
    await receive('live-behind', 10);
    await receive('live-behind', 7);
    const host = node.registry.activeHost({ kind: 'inventory', id: 'live-behind' })!.host;
    const internals = host as unknown as HostInternals;
    const before = await loadState(node.journal, inventory, { kind: 'inventory', id: 'live-behind' }, 1);
    const [state, seq] = [internals.state, internals.seqValue];
    internals.state = before.state;
    internals.seqValue = 1;

    const { record } = await verify('--all');
    expect(record.reconciliation_failures).toEqual([
      expect.objectContaining({ check: 'live_state_matches_replay', actor: 'inventory/live-behind', detail: expect.stringMatching(/behind/) }),
    ]);
    [internals.state, internals.seqValue] = [state, seq];
    expect((await verify('--all')).record.confidence_status).toBe('trusted');
  });

  it('--live refuses to run without a live node; the default falls back to the journal alone', async () => {
    await node.stop();
    const forced = await runCli(['verify', '--all', '--live'], { PPOS_DATABASE_URL: db.url, PPOS_NATS_URL: nats.url });
    expect(forced.code).toBe(1);
    expect(forced.stderr).toMatch(/no ppos node answers/);
    const fallback = await verify('--all');
    expect(fallback.record.checks).not.toContain('live_state_matches_replay');
    expect(fallback.code).toBe(0);
    node = await startTestNode(nats.url, db.url);
  });
});

describe('a node that starts', () => {
  const logs: string[] = [];
  const launch = (name: string, args: string[] = []): NodeProcess =>
    new NodeProcess({ nats: nats.url, databaseUrl: db.url, nodeId: name, args, onLog: (line) => logs.push(line) });
  /** The evidence `nodeId` logged in lines from index `from` on (an earlier run of the same id logged its own). */
  const evidenceOf = (nodeId: string, from = 0): Promise<NodeRecoveryEvidence> =>
    waitFor(`the recovery evidence of ${nodeId}`, () => {
      for (const line of logs.slice(from)) {
        const entry = JSON.parse(line) as { msg?: string; node?: string; evidence?: NodeRecoveryEvidence };
        if (entry.msg === 'recovery evidence' && entry.node === nodeId) return entry.evidence;
      }
      return undefined;
    });

  /** A work order whose release saga is left open by a SIGKILL while its Reserve is held in PostgreSQL. */
  async function crashMidSaga(workOrderId: string, nodeId: string): Promise<void> {
    const node = launch(nodeId, ['--snapshot-every', '1']);
    try {
      await node.ready;
      await client.sendWithRetry('inventory', `${workOrderId}-steel`, 'Receive', { qty: 10 }, { deadlineMs: 20_000 });
      await client.sendWithRetry('workorder', workOrderId, 'Create', { bom: [{ sku: `${workOrderId}-steel`, qty: 4 }], stages: ['cut'] }, { deadlineMs: 20_000 });
      const blocker = await blockAppend(db, 'inventory', `${workOrderId}-steel`, `ppos:wo:${workOrderId}:release1:reserve:0`);
      try {
        void client.send('workorder', workOrderId, 'Release', {}, { messageId: `${workOrderId}-release`, timeoutMs: 30_000 }).catch(() => undefined);
        await blocker.waiting();
        await waitFor('the snapshot of ReleaseStarted', async () => {
          const rows = await db.query("SELECT 1 FROM ppos_snapshots WHERE kind = 'workorder' AND actor_id = $1 AND seq = 2", [workOrderId]);
          return (rows.rowCount ?? 0) > 0;
        });
        await node.crash();
      } finally {
        await blocker.release();
      }
    } finally {
      await node.crash();
    }
  }

  it('resumes the sagas a crash left open and logs one trusted evidence record for them', async () => {
    await crashMidSaga('wo-ev-1', 'ev-crashed-1');
    // Restarted under the same id, as a supervisor would: it takes its shard leases back at once
    // (a new id would first wait for the crashed node's leases to expire).
    const from = logs.length;
    const restarted = launch('ev-crashed-1');
    try {
      await restarted.ready;
      const evidence = await evidenceOf('ev-crashed-1', from);
      expect(evidence).toMatchObject({
        confidence_status: 'trusted',
        reconciliation_failures: [],
        open_sagas_resumed: 1,
        snapshot_mismatches: 0,
        snapshots_rejected: 0,
      });
      expect(evidence.actors).toBeGreaterThanOrEqual(1);
      expect(evidence.actors_recovered).toBeGreaterThanOrEqual(1);
      expect(evidence.events_processed).toBeGreaterThanOrEqual(2);
      expect(evidence.checks).toEqual(expect.arrayContaining(['live_state_matches_replay', 'snapshots_match_replay', 'gapless_sequences']));
      expect(typeof evidence.recovery_ms).toBe('number');
      expect(logs.slice(from).filter((l) => l.includes('"msg":"recovery evidence"') && l.includes('"node":"ev-crashed-1"'))).toHaveLength(1);
      // The saga it resumed settles, and the client's retry gets its reply.
      const released = await client.sendWithRetry('workorder', 'wo-ev-1', 'Release', {}, { messageId: 'wo-ev-1-release', deadlineMs: 30_000 });
      expect(released).toMatchObject({ ok: true, state: { status: 'released' } });
    } finally {
      await restarted.stop();
    }
  });

  it('skips a tampered snapshot on activation, reports it in its evidence, and ppos verify counts it', async () => {
    await crashMidSaga('wo-ev-2', 'ev-crashed-2');
    await db.query(
      "UPDATE ppos_snapshots SET state = jsonb_set(state, '{context,attempt}', '7') WHERE kind = 'workorder' AND actor_id = 'wo-ev-2' AND seq = 2",
    );
    // Restarted under the same id, as a supervisor would: it takes its shard leases back at once
    // (a new id would first wait for the crashed node's leases to expire).
    const from = logs.length;
    const restarted = launch('ev-crashed-2');
    try {
      await restarted.ready;
      const evidence = await evidenceOf('ev-crashed-2', from);
      expect(evidence).toMatchObject({ confidence_status: 'suspect', open_sagas_resumed: 1, snapshots_rejected: 1, snapshot_mismatches: 1 });
      expect(evidence.reconciliation_failures).toEqual([expect.objectContaining({ check: 'snapshots_match_replay', actor: 'workorder/wo-ev-2' })]);
      // The tampered state never became live: the saga still runs attempt 1 and settles.
      const released = await client.sendWithRetry('workorder', 'wo-ev-2', 'Release', {}, { messageId: 'wo-ev-2-release', deadlineMs: 30_000 });
      expect(released).toMatchObject({ ok: true, state: { status: 'released', attempt: 1 } });
      expect(logs.some((l) => l.includes('snapshot skipped; replayed instead') && l.includes('workorder/wo-ev-2'))).toBe(true);

      const { code, record } = await verify('--all');
      expect(record.snapshot_mismatches).toBe(1);
      expect(record.confidence_status).toBe('suspect');
      expect(record.reconciliation_failures.map((f) => f.check)).toEqual(['snapshots_match_replay']);
      expect(code).toBe(1);
    } finally {
      await restarted.stop();
    }
  });
});
