import { inventory } from '/work/main/dist/actors/inventory.js';
import { initialState, replay, persistState, restoreState } from '/work/main/dist/actors/state.js';
import { stateHash, snapshotOf } from '/work/main/dist/runtime/recovery.js';
const n = Number(process.argv[2] ?? 100000);
let s = initialState(inventory);
const ev = [{ type: 'Received', qty: 1e9 }]; for (let i = 0; i < n; i++) ev.push({ type: 'Reserved', reservationId: `01KT5ABCDEFG-long-${i}`, qty: 1 });
s = replay(inventory, s, ev);
for (let rep = 0; rep < 3; rep++) {
  let t = performance.now(); const snap = snapshotOf(inventory, s, n + 1); const tSnap = performance.now() - t;
  t = performance.now(); const text = JSON.stringify(snap.state); const tStr = performance.now() - t;
  t = performance.now(); const parsed = JSON.parse(text); const tParse = performance.now() - t;
  t = performance.now(); const h = stateHash(parsed); const tHash = performance.now() - t;
  t = performance.now(); const restored = restoreState(inventory, parsed); const tRestore = performance.now() - t;
  t = performance.now(); inventory.invariantFailures(restored); const tInv = performance.now() - t;
  console.log({ n, bytes: text.length, snapshotOf: tSnap | 0, stringify: tStr | 0, parse: tParse | 0, hash: tHash | 0, restore: tRestore | 0, inv: tInv | 0, same: h === snap.hash });
}
