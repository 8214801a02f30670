// Runs one ppos node hosting the tool kind beside the built-in ones, then drives it with the
// typed clients: a wrench out and back damaged, repaired; a drill out with bits held at the
// inventory (the tool's saga), and back. Needs NATS and PostgreSQL (PPOS_NATS_URL,
// PPOS_DATABASE_URL; without a database URL, the embedded PostgreSQL in ./.ppos).
import { clientFor, inventoryCommands, PposClient, startPposNode } from 'ppos';
import { tool } from './tool.js';

const node = await startPposNode({ kinds: [tool], node: process.env.PPOS_NODE_ID ?? 'tool-crib' });
const client = await PposClient.connect(process.env.PPOS_NATS_URL ?? 'nats://127.0.0.1:4222');
try {
  const tools = clientFor(client, tool);
  const stock = clientFor(client, inventoryCommands);
  const wrench = process.argv[2] ?? 'wrench-1';
  const show = (what: string, reply: unknown): void => console.log(`${what}: ${JSON.stringify(reply)}`);
  show('CheckOut', await tools.send(wrench, 'CheckOut', { holder: 'ada' }));
  show('Return', await tools.send(wrench, 'Return', { condition: 'damaged' }));
  show('Repaired', await tools.send(wrench, 'Repaired', {}));
  show('Get', await tools.send(wrench, 'Get', {}));
  show('Receive bits', await stock.send(`${wrench}-bits`, 'Receive', { qty: 10 }));
  show('CheckOut drill', await tools.send(`${wrench}-drill`, 'CheckOut', { holder: 'grace', bits: { sku: `${wrench}-bits`, qty: 4 } }));
  show('bits', await stock.send(`${wrench}-bits`, 'Get', {}));
  show('Return drill', await tools.send(`${wrench}-drill`, 'Return', { condition: 'ok' }));
} finally {
  await client.close();
  await node.stop();
}
