import { PgJournal } from '/work/main/dist/persistence/pg-journal.js';
import { inventory } from '/work/main/dist/actors/inventory.js';
import { restoreState, replay } from '/work/main/dist/actors/state.js';
import { stateHash } from '/work/main/dist/runtime/recovery.js';
const j = new PgJournal({ connectionString: 'postgres://postgres@127.0.0.1:5432/ppos_lb2' });
const ref = { kind: 'inventory', id: 'HOT' };
for (let r = 0; r < 4; r++) {
  let t = performance.now(); const [snap] = await j.snapshots(ref, 2, undefined, 1); const a = performance.now() - t;
  t = performance.now(); stateHash(snap.state); const b = performance.now() - t;
  t = performance.now(); const st = restoreState(inventory, snap.state); inventory.invariantFailures(st); const c = performance.now() - t;
  t = performance.now(); const evs = await j.readEventsForReplay(ref, snap.seq); const d = performance.now() - t;
  t = performance.now(); replay(inventory, st, evs.map(e => e.event)); const e = performance.now() - t;
  console.log({ fetch: a | 0, hash: b | 0, restore: c | 0, readTail: d | 0, replay: e | 0 });
}
await j.close();
