import { inventory } from '/work/main/dist/actors/inventory.js';
import { initialState, replay, applyEvent } from '/work/main/dist/actors/state.js';
const events = [{ type: 'Received', qty: 1e9 }];
for (let i = 0; i < 30000; i++) { events.push({ type: 'Reserved', reservationId: 'r' + i, qty: 1 }); if (i % 2) events.push({ type: 'Consumed', reservationId: 'r' + (i - 1) }); }
for (let rep = 0; rep < 3; rep++) {
  const t = performance.now();
  const s = replay(inventory, initialState(inventory), events);
  console.log('replay', events.length, (performance.now() - t).toFixed(0), 'ms', ((performance.now() - t) / events.length * 1000).toFixed(2), 'us/event', s.context.reservations.size);
}
