import { OpenReservations } from '/work/main/dist/actors/open-reservations.js';
for (let rep = 0; rep < 3; rep++) {
  let t0 = performance.now(); let r = OpenReservations.empty;
  for (let i = 0; i < 30000; i++) { r = r.with('r' + i, { qty: 1 }); if (i % 2) r = r.without('r' + (i - 1)); }
  console.log('tree ops', (performance.now() - t0).toFixed(0), 'ms for 45000');
}
