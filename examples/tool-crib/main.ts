// Runs one ppos node hosting the tool kind beside the built-in ones, then checks a tool out
// and back in with the typed client. Needs NATS and PostgreSQL (PPOS_NATS_URL,
// PPOS_DATABASE_URL; without a database URL, the embedded PostgreSQL in ./.ppos).
import { clientFor, PposClient, startPposNode } from 'ppos';
import { tool } from './tool.js';

const node = await startPposNode({ kinds: [tool], node: process.env.PPOS_NODE_ID ?? 'tool-crib' });
const client = await PposClient.connect(process.env.PPOS_NATS_URL ?? 'nats://127.0.0.1:4222');
try {
  const tools = clientFor(client, tool);
  const id = process.argv[2] ?? 'wrench-1';
  for (const [type, payload] of [
    ['CheckOut', { holder: 'ada' }],
    ['Return', { condition: 'damaged' }],
    ['Repaired', {}],
    ['Get', {}],
  ] as const) {
    const reply = await tools.send(id, type, payload);
    console.log(`${type}: ${JSON.stringify(reply)}`);
  }
} finally {
  await client.close();
  await node.stop();
}
