// ppos as a library: a kind of the user's own (the tool-crib example, written against the
// public API only) hosted by a node started from code beside the built-in kinds, driven with
// the typed client, and seen by the CLI's tools through --kinds. Then a kind whose events
// evolved: events journaled by version 1 are read by version 2 through its upcasters, the same
// way by activation, time travel and verify, and stay in the journal as they were written.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { tool } from '../../examples/tool-crib/tool.js';
import { loadState } from '../../runtime/recovery.js';
import { crossActorChecks } from '../../runtime/cross-checks.js';
import { verifyJournals } from '../../runtime/verify.js';
import { PgJournal } from '../../persistence/pg-journal.js';
import { actorKinds } from '../../actors/index.js';
import { clientFor, defineKind, inventoryCommands, PposClient, startPposNode, type RunningNode } from '../../src/index.js';
import type { PrivateNatsServer } from '../../src/nats-server.js';
import { runCli } from '../helpers/cli.js';
import { silentLogger } from '../helpers/node.js';
import { createTestDatabase, startNats, type TestDatabase } from '../helpers/services.js';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
const EXAMPLE = join(ROOT, 'examples', 'tool-crib');

let db: TestDatabase;
let nats: PrivateNatsServer;
let client: PposClient;

beforeAll(async () => {
  db = await createTestDatabase();
  nats = await startNats();
  client = await PposClient.connect(nats.url);
  // The example compiled as a user would, against the package's own declarations ('ppos').
  await run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(EXAMPLE, 'tsconfig.json')], { cwd: ROOT });
}, 120_000);

afterAll(async () => {
  await client?.close();
  await nats?.stop();
  await db?.drop();
});

const startWith = (kinds: Parameters<typeof startPposNode>[0]['kinds'], node = 'lib-node'): Promise<RunningNode> =>
  startPposNode({ kinds, nats: nats.url, db: db.url, node, followers: 'none', logger: silentLogger, env: {} });

describe('a kind of your own', () => {
  it('is hosted beside the built-in kinds, typed end to end, and seen by get, history, state --at and verify', async () => {
    const node = await startWith([tool]);
    try {
      const tools = clientFor(client, tool);
      expect(await tools.send('wrench-1', 'CheckOut', { holder: 'ada' })).toMatchObject({ ok: true, seq: 1, state: { status: 'checked_out', holder: 'ada' } });
      expect(await tools.send('wrench-1', 'CheckOut', { holder: 'grace' })).toMatchObject({ ok: false, error: { code: 'REJECTED', reason: 'CHECKED_OUT' } });
      expect(await tools.send('wrench-1', 'Return', { condition: 'damaged' })).toMatchObject({ ok: true, seq: 2, state: { status: 'in_repair' } });
      // Bad input is refused by the kind's own schemas, before anything is decided.
      expect(await client.send('tool', 'wrench-1', 'Return', { condition: 'lost' })).toMatchObject({ ok: false, error: { code: 'BAD_REQUEST' } });
      expect(await client.send('tool', 'wrench-1', 'Steal', {})).toMatchObject({ ok: false, error: { code: 'UNKNOWN_COMMAND' } });
      // The built-in kinds run beside it.
      expect(await clientFor(client, inventoryCommands).send('sku-lib-1', 'Receive', { qty: 5 })).toMatchObject({ ok: true });

      const env = { PPOS_NATS_URL: nats.url, PPOS_DATABASE_URL: db.url };
      const kinds = join(EXAMPLE, 'dist', 'tool.js');
      // Nodes advertise the kinds they host: a CLI never built with `tool` lists it and talks to it.
      const listed = await runCli(['kinds', '--json'], env);
      expect(listed.code, listed.stderr).toBe(0);
      const hosted = (JSON.parse(listed.stdout) as { nodes: { kinds: { kind: string; commands: Record<string, { properties?: Record<string, unknown> }> }[] }[] }).nodes[0]!.kinds;
      expect(hosted.map((k) => k.kind).sort()).toEqual(['inventory', 'tool', 'workorder']);
      expect(hosted.find((k) => k.kind === 'tool')!.commands.CheckOut!.properties).toHaveProperty('holder');
      const advertised = await runCli(['get', 'tool', 'wrench-1', '--json'], env);
      expect(advertised.code, advertised.stderr).toBe(0);
      expect(JSON.parse(advertised.stdout)).toMatchObject({ state: { status: 'in_repair' } });
      const unknown = await runCli(['get', 'spanner', 'x-1', '--json'], env);
      expect(unknown.code).toBe(2);
      expect(unknown.stderr).toMatch(/unknown kind "spanner": no live node hosts it; known: .*tool.*--kinds/);
      const get = await runCli(['get', 'tool', 'wrench-1', '--json', '--kinds', kinds], env);
      expect(get.code, get.stderr).toBe(0);
      expect(JSON.parse(get.stdout)).toMatchObject({ state: { status: 'in_repair', holder: null, checkouts: 1 } });
      const history = await runCli(['history', 'tool', 'wrench-1', '--json', '--kinds', kinds], env);
      expect(history.code, history.stderr).toBe(0);
      expect(history.stdout).toMatch(/CheckedOut[\s\S]*Returned/);
      const at1 = await runCli(['state', 'tool', 'wrench-1', '--at', '1', '--json', '--kinds', kinds], env);
      expect(at1.code, at1.stderr).toBe(0);
      expect(JSON.parse(at1.stdout)).toMatchObject({ seq: 1, state: { status: 'checked_out', holder: 'ada' } });
      const verify = await runCli(['verify', 'tool', 'wrench-1', '--no-live', '--kinds', kinds], { ...env, PPOS_KINDS: '' });
      expect(verify.code, verify.stderr).toBe(0);
      expect(JSON.parse(verify.stdout)).toMatchObject({ confidence_status: 'trusted', checks: expect.arrayContaining(['holder_iff_out']) });
    } finally {
      await node.stop();
    }
  }, 60_000);

  it('runs its own saga with the inventory: the runtime sends its steps, brings the answers back, and settles the reply', async () => {
    const node = await startWith([tool], 'lib-saga-node');
    try {
      const tools = clientFor(client, tool);
      const stock = clientFor(client, inventoryCommands);
      expect(await stock.send('bits-6mm', 'Receive', { qty: 10 })).toMatchObject({ ok: true });
      // Held at the inventory before the check-out answers.
      const out = await tools.send('drill-1', 'CheckOut', { holder: 'ada', bits: { sku: 'bits-6mm', qty: 4 } });
      expect(out).toMatchObject({ ok: true, state: { status: 'checked_out', holder: 'ada', bits: { sku: 'bits-6mm', qty: 4 } } });
      expect(await stock.send('bits-6mm', 'Get', {})).toMatchObject({ ok: true, state: { onHand: 10, reserved: 4, available: 6 } });
      // Short: refused with the inventory's reason, nothing held, the tool back in the crib.
      const short = await tools.send('drill-2', 'CheckOut', { holder: 'grace', bits: { sku: 'bits-6mm', qty: 7 } });
      expect(short).toMatchObject({ ok: false, error: { code: 'REJECTED' } });
      expect(await tools.send('drill-2', 'Get', {})).toMatchObject({ ok: true, state: { status: 'in_crib', holder: null } });
      // Returned: the bits are consumed.
      expect(await tools.send('drill-1', 'Return', { condition: 'ok' })).toMatchObject({ ok: true, state: { status: 'in_crib', bits: null } });
      expect(await stock.send('bits-6mm', 'Get', {})).toMatchObject({ ok: true, state: { onHand: 6, reserved: 0, available: 6 } });
      // A client cannot forge an answer: the answer command is the runtime's.
      expect(await client.send('tool', 'drill-2', '@Answer', { tag: { step: 'reserve', checkout: 1 }, ok: true })).toMatchObject({ ok: false, error: { code: 'UNKNOWN_COMMAND' } });
      const journal = new PgJournal({ connectionString: db.url, poolSize: 2 });
      try {
        const kinds = new Map([...actorKinds, ['tool', tool]]);
        const evidence = await verifyJournals({ journal, kinds, crossChecks: crossActorChecks(kinds) });
        expect(evidence.reconciliation_failures).toEqual([]);
      } finally {
        await journal.close();
      }
    } finally {
      await node.stop();
    }
  }, 60_000);
});

// A gauge kind whose Calibrated event changed shape: version 1 said `by: "ada@metrology"` and
// `offset`; version 2 splits `by` into `person` and `team`, and renames `offset` to `offsetMicrons`.
const gaugeShape = {
  name: 'gauge',
  initial: { offsetMicrons: 0, calibratedBy: null as string | null, team: null as string | null },
  commands: { Calibrate: z.object({ by: z.string(), offset: z.number().int() }).strict() },
  events: {} as Record<string, never>,
};

const gaugeV1 = defineKind({ ...gaugeShape, snapshotEvery: 1, events: { Calibrated: z.object({ by: z.string(), offset: z.number().int() }) } }).behaviour({
  evolve: { Calibrated: (state, event) => ({ ...state, offsetMicrons: event.offset, calibratedBy: event.by.split('@')[0]!, team: event.by.split('@')[1] ?? null }) },
  decide: { Calibrate: (_state, { by, offset }) => ({ emit: { type: 'Calibrated', by, offset } }) },
});

const gaugeV2 = defineKind({
  ...gaugeShape,
  commands: { Calibrate: z.object({ person: z.string(), team: z.string(), offsetMicrons: z.number().int() }).strict() },
  events: { Calibrated: z.object({ person: z.string(), team: z.string(), offsetMicrons: z.number().int() }) },
}).behaviour({
  evolve: { Calibrated: (state, event) => ({ ...state, offsetMicrons: event.offsetMicrons, calibratedBy: event.person, team: event.team }) },
  decide: { Calibrate: (_state, payload) => ({ emit: { type: 'Calibrated', ...payload } }) },
  crossInvariants: {
    // Deliberately strict, to be seen failing: every gauge calibrated by the metrology team.
    gauges_calibrated_by_metrology: (actors) =>
      [...actors]
        .filter((a) => a.kind === 'gauge' && (a.context as { state: { team: string | null } }).state.team !== 'metrology')
        .map((a) => ({ actor: `gauge/${a.id}`, detail: `calibrated by team ${(a.context as { state: { team: string | null } }).state.team}` })),
  },
  evolution: {
    Calibrated: {
      version: 2,
      upcast: {
        1: ({ by, offset }) => {
          const [person, team] = String(by).split('@');
          return { person, team: team ?? 'unknown', offsetMicrons: offset };
        },
      },
    },
  },
});

describe('events that evolved', () => {
  it('reads version-1 events through the upcasters: activation, state --at and verify agree, and the journal is unchanged', async () => {
    const v1 = await startWith([gaugeV1], 'gauge-v1');
    const gauges = clientFor(client, gaugeV1);
    try {
      expect(await gauges.send('g-1', 'Calibrate', { by: 'ada@metrology', offset: 12 })).toMatchObject({ ok: true, seq: 1 });
      expect(await gauges.send('g-1', 'Calibrate', { by: 'grace@qa', offset: -3 })).toMatchObject({ ok: true, seq: 2 });
    } finally {
      await v1.stop();
    }
    const before = await db.query("SELECT seq::int AS seq, data::text AS data, event_version FROM ppos_events WHERE kind = 'gauge' ORDER BY seq");
    // Its own snapshot policy: every event (the node's default is 100).
    const snapshots = await db.query("SELECT seq::int AS seq FROM ppos_snapshots WHERE kind = 'gauge' ORDER BY seq");
    expect(snapshots.rows.map((r) => r.seq)).toContain(1);
    expect(before.rows.map((r) => r.event_version)).toEqual([null, null]);

    const v2 = await startWith([gaugeV2], 'gauge-v2');
    try {
      // Activation replays the old events through the upcaster.
      const activated = await clientFor(client, gaugeV2).send('g-1', 'Calibrate', { person: 'linus', team: 'metrology', offsetMicrons: 5 });
      expect(activated).toMatchObject({ ok: true, seq: 3, state: { offsetMicrons: 5, calibratedBy: 'linus', team: 'metrology' } });
    } finally {
      await v2.stop();
    }
    const rows = await db.query("SELECT seq::int AS seq, data::text AS data, event_version FROM ppos_events WHERE kind = 'gauge' ORDER BY seq");
    // The old events as they were written; the new one marked with its version.
    expect(rows.rows.slice(0, 2)).toEqual(before.rows);
    expect(rows.rows[2]).toMatchObject({ seq: 3, event_version: 2 });

    const journal = new PgJournal({ connectionString: db.url, poolSize: 2 });
    try {
      // Time travel: right after event 2, as version 2 reads it.
      const at2 = await loadState(journal, gaugeV2, { kind: 'gauge', id: 'g-1' }, 2);
      expect(at2.state.context).toEqual({ state: { offsetMicrons: -3, calibratedBy: 'grace', team: 'qa' } });
      const kinds = new Map([...actorKinds, ['gauge', gaugeV2]]);
      const evidence = await verifyJournals({ journal, kinds, actors: [{ kind: 'gauge', id: 'g-1' }] });
      expect(evidence).toMatchObject({ confidence_status: 'trusted', events_processed: 3 });
      // The cross-actor invariant the kind registered, checked by verify --all: g-1 is metrology now.
      const all = await verifyJournals({ journal, kinds, crossChecks: crossActorChecks(kinds) });
      expect(all.checks).toContain('gauges_calibrated_by_metrology');
      expect(all.reconciliation_failures.filter((f) => f.check === 'gauges_calibrated_by_metrology')).toEqual([]);
      const again = await startWith([gaugeV2], 'gauge-v2');
      try {
        expect(await clientFor(client, gaugeV2).send('g-2', 'Calibrate', { person: 'grace', team: 'qa', offsetMicrons: 1 })).toMatchObject({ ok: true });
      } finally {
        await again.stop();
      }
      const broken = await verifyJournals({ journal, kinds, crossChecks: crossActorChecks(kinds) });
      expect(broken.reconciliation_failures).toContainEqual(expect.objectContaining({ check: 'gauges_calibrated_by_metrology', actor: 'gauge/g-2' }));
      // Version 1 cannot read what version 2 wrote: verify says so, naming the event.
      const stale = await verifyJournals({ journal, kinds: new Map([...actorKinds, ['gauge', gaugeV1]]), actors: [{ kind: 'gauge', id: 'g-1' }] });
      expect(stale.confidence_status).not.toBe('trusted');
      expect(JSON.stringify(stale.reconciliation_failures)).toMatch(/event 3: .*Calibrated was written at version 2, newer than this build's 1/);
    } finally {
      await journal.close();
    }
  }, 60_000);
});
