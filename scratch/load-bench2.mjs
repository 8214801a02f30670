import pg from 'pg';
import { PgJournal } from '/work/main/dist/persistence/pg-journal.js';
import { migrate } from '/work/main/dist/persistence/migrations.js';
import { inventory } from '/work/main/dist/actors/inventory.js';
import { initialState, replay } from '/work/main/dist/actors/state.js';
import { snapshotOf, loadState } from '/work/main/dist/runtime/recovery.js';
const admin = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/postgres' }); await admin.connect();
const name = 'ppos_lb2'; await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`); await admin.query(`CREATE DATABASE ${name}`);
const url = `postgres://postgres@127.0.0.1:5432/${name}`;
const j = new PgJournal({ connectionString: url }); await migrate(j.pool);
const ev = [{ type: 'Received', qty: 1e9 }]; for (let i = 0; i < 105000; i++) ev.push({ type: 'Reserved', reservationId: `01KT5ABCDEFGHJKMNPQRS-long-${i}`, qty: 1 });
const s = replay(inventory, initialState(inventory), ev);
const ref = { kind: 'inventory', id: 'HOT' };
await j.saveSnapshot(ref, snapshotOf(inventory, s, ev.length));
// the journal rows: the snapshot's events are not needed; write the tail after it.
await j.pool.query(`INSERT INTO ppos_events (kind, actor_id, seq, type, data, message_id, machine_version, recorded_at) SELECT 'inventory','HOT', g, 'Received', '{"qty":1}', 'm'||g, 2, now() FROM generate_series(1, $1::int) g`, [ev.length + 2400]);
await j.close(); await admin.end();
console.log('ready');
