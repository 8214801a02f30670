import pg from 'pg';
import { PgJournal } from '/work/main/dist/persistence/pg-journal.js';
import { migrate } from '/work/main/dist/persistence/migrations.js';
import { inventory } from '/work/main/dist/actors/inventory.js';
import { initialState, replay, restoreState } from '/work/main/dist/actors/state.js';
import { snapshotOf, stateHash, loadState } from '/work/main/dist/runtime/recovery.js';
const admin = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/postgres' }); await admin.connect();
const name = 'ppos_lb_' + Date.now(); await admin.query(`CREATE DATABASE ${name}`);
const url = `postgres://postgres@127.0.0.1:5432/${name}`;
const j = new PgJournal({ connectionString: url }); await migrate(j.pool);
const ev = [{ type: 'Received', qty: 1e9 }]; for (let i = 0; i < 105000; i++) ev.push({ type: 'Reserved', reservationId: `01KT5ABCDEFGHJKMNPQRS-long-${i}`, qty: 1 });
const s = replay(inventory, initialState(inventory), ev);
const snap = snapshotOf(inventory, s, ev.length);
const ref = { kind: 'inventory', id: 'HOT' };
console.log('stored bytes', await j.saveSnapshot(ref, snap));
for (let r = 0; r < 3; r++) {
  let t = performance.now(); const [row] = await j.snapshots(ref, inventory.machineVersion, undefined, 1); const tFetch = performance.now() - t;
  t = performance.now(); const h = stateHash(row.state); const tHash = performance.now() - t;
  t = performance.now(); const st = restoreState(inventory, row.state); const tRestore = performance.now() - t;
  t = performance.now(); const c = await j.pool.query("select state::text from ppos_snapshots limit 1"); const tText = performance.now() - t;
  t = performance.now(); await j.pool.query("select octet_length(state::text) from ppos_snapshots limit 1"); const tServer = performance.now() - t;
  console.log({ fetch: tFetch | 0, hash: tHash | 0, restore: tRestore | 0, fetchText: tText | 0, serverTextOnly: tServer | 0 });
}
await j.close(); await admin.query(`DROP DATABASE ${name} WITH (FORCE)`); await admin.end();
