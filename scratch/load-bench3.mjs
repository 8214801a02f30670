import { PgJournal } from '/work/main/dist/persistence/pg-journal.js';
import { inventory } from '/work/main/dist/actors/inventory.js';
import { loadState } from '/work/main/dist/runtime/recovery.js';
const j = new PgJournal({ connectionString: 'postgres://postgres@127.0.0.1:5432/ppos_lb2' });
for (let r = 0; r < 3; r++) { const t = performance.now(); const l = await loadState(j, inventory, { kind: 'inventory', id: 'HOT' }); console.log('loadState', (performance.now() - t) | 0, 'ms', l.snapshotSeq, l.eventsReplayed); }
await j.close();
