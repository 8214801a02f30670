// Least privilege on NATS (CONTRACT.md section 2): the shipped server configurations, run by a
// real nats-server, give nodes, operators and clients only what each needs. Proved with real
// clients: what a client may not do, the server itself refuses.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PposClient } from '../../src/client.js';
import { resolveConfig } from '../../src/config.js';
import { PrivateNatsServer } from '../../src/nats-server.js';
import { natsSettings } from '../../src/nats.js';
import { startNode, type RunningNode } from '../../src/node.js';
import { commandSubject, stepSubject } from '../../runtime/subjects.js';
import { runCli } from '../helpers/cli.js';
import { silentLogger } from '../helpers/node.js';
import { createTestDatabase, type TestDatabase } from '../helpers/services.js';
import { sleep, waitFor } from '../helpers/wait.js';

// nats-server reads a variable in its configuration as a value of its own syntax: one that
// begins with a digit or a dash is taken for a number and refused ("Expected a digit"), so each
// begins with a letter.
const password = (): string => `p${randomBytes(12).toString('base64url')}`;
const passwords = {
  PPOS_NODE_PASSWORD: password(),
  PPOS_OPERATOR_PASSWORD: password(),
  PPOS_CLIENT_PASSWORD: password(),
};
const shipped = (file: string): string => readFileSync(new URL(`../../deploy/nats/${file}`, import.meta.url), 'utf8');
const hostOf = (server: PrivateNatsServer): string => server.url.replace('nats://', '');
const asNode = (server: PrivateNatsServer): string => `nats://ppos-node:${passwords.PPOS_NODE_PASSWORD}@${hostOf(server)}`;
const asClient = (server: PrivateNatsServer) =>
  natsSettings({ nats: `nats://ppos-client:${passwords.PPOS_CLIENT_PASSWORD}@${hostOf(server)}`, natsInboxPrefix: '_INBOX.client' }, {});
const operatorEnv = (server: PrivateNatsServer, inbox = '_INBOX.operator'): Record<string, string> => ({
  PPOS_NATS_URL: `nats://${hostOf(server)}`,
  PPOS_NATS_USER: 'ppos-operator',
  PPOS_NATS_PASS: passwords.PPOS_OPERATOR_PASSWORD,
  PPOS_NATS_INBOX_PREFIX: inbox,
});

/** What the server refused this connection, as nats.js reports it. */
function refusals(nc: NatsConnection): string[] {
  const seen: string[] = [];
  void (async () => {
    for await (const status of nc.status()) if (status.type === 'error') seen.push(String(status.error));
  })();
  return seen;
}

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.drop();
});

describe('deploy/nats/nats-server.conf: three users', () => {
  let server: PrivateNatsServer;
  let node: RunningNode;

  beforeAll(async () => {
    server = await PrivateNatsServer.start({ config: shipped('nats-server.conf'), env: passwords });
    node = await startNode(resolveConfig({ nats: asNode(server), db: db.url, node: 'secure-node' }, {}), silentLogger);
  });

  afterAll(async () => {
    await node?.stop();
    await server?.stop();
  });

  it('lets a client send commands and inspect actors, and nothing else', async () => {
    const client = await PposClient.connect(asClient(server), 'ppos-test-client');
    try {
      expect(await client.send('inventory', 'sec-1', 'Receive', { qty: 5 })).toMatchObject({ ok: true, state: { onHand: 5 } });
      expect(await client.inspect('inventory', 'sec-1')).toMatchObject({ status: 'active', seq: 1 });
      await expect(client.gather('stats', 300)).rejects.toThrow(/Permissions Violation for Publish to "ppos.nodes.stats"/);
    } finally {
      await client.close();
    }
  });

  it("refuses a client's subscription to commands and its publish under ppos.internal.>: it can neither answer a command nor join a saga", async () => {
    const rogue = await connect({ servers: hostOf(server), user: 'ppos-client', pass: passwords.PPOS_CLIENT_PASSWORD, inboxPrefix: '_INBOX.client' });
    const refused = refusals(rogue);
    let answered = 0;
    rogue.subscribe('ppos.cmd.>', {
      callback: (error, msg) => {
        if (error) return; // the server's refusal of this very subscription
        answered += 1;
        msg.respond(JSON.stringify({ ok: true, duplicate: false, seq: 99, events: [], state: { onHand: 1_000_000 } }));
      },
    });
    rogue.subscribe('ppos.internal.>', { callback: () => undefined });
    rogue.publish(stepSubject('inventory', 'sec-2'), JSON.stringify({ id: 'ppos:wo:WO-X:release1:reserve:0', type: 'Reserve', payload: { reservationId: 'WO-X:0', qty: 1 } }));
    await rogue.flush();
    await waitFor('three refusals', () => refused.length >= 3);
    expect(refused.join('\n')).toMatch(/Subscription to "ppos\.cmd\.>"/);
    expect(refused.join('\n')).toMatch(/Subscription to "ppos\.internal\.>"/);
    expect(refused.join('\n')).toMatch(/Publish to "ppos\.internal\.step\.inventory\.sec-2"/);

    // The real node answers; the rogue never saw the request.
    const client = await PposClient.connect(asClient(server));
    try {
      expect(await client.send('inventory', 'sec-2', 'Receive', { qty: 3 })).toMatchObject({ ok: true, seq: 1, state: { onHand: 3 } });
      await client.send('inventory', 'sec-2', 'Receive', { qty: 3 });
      await client.send('inventory', 'sec-2', 'Receive', { qty: 3 });
    } finally {
      await client.close();
    }
    await sleep(100);
    expect(answered).toBe(0);
    const reservations = await db.query("SELECT 1 FROM ppos_events WHERE actor_id = 'sec-2' AND type = 'Reserved'");
    expect(reservations.rowCount).toBe(0);
    await rogue.close();
  });

  it('runs a work order saga between nodes of the node role', async () => {
    const client = await PposClient.connect(asClient(server));
    try {
      await client.send('inventory', 'sec-steel', 'Receive', { qty: 10 });
      await client.send('workorder', 'SEC-WO', 'Create', { bom: [{ sku: 'sec-steel', qty: 4 }], stages: ['cut'] });
      expect(await client.sendWithRetry('workorder', 'SEC-WO', 'Release', {})).toMatchObject({ ok: true, state: { status: 'released' } });
    } finally {
      await client.close();
    }
  });

  it('lets an operator list nodes and actors and watch the feed', async () => {
    const nodes = await runCli(['nodes', '--json'], operatorEnv(server));
    expect(nodes.code, nodes.stderr).toBe(0);
    expect(JSON.parse(nodes.stdout).nodes).toEqual([expect.objectContaining({ node: 'secure-node' })]);
    const actors = await runCli(['actors', '--json'], operatorEnv(server));
    expect(actors.code, actors.stderr).toBe(0);
    expect(JSON.parse(actors.stdout).actors.length).toBeGreaterThan(0);
    // The live feed: commands keep landing until the watcher has printed one and exited.
    const watching = runCli(['watch', 'inventory', 'sec-feed', '--count', '1', '--json'], operatorEnv(server));
    const client = await PposClient.connect(asClient(server));
    let done = false;
    void watching.finally(() => (done = true));
    while (!done) {
      await client.send('inventory', 'sec-feed', 'Receive', { qty: 1 });
      await sleep(100);
    }
    await client.close();
    const watched = await watching;
    expect(watched.code, watched.stderr).toBe(0);
    expect(JSON.parse(watched.stdout)).toMatchObject({ kind: 'inventory', id: 'sec-feed', event: { type: 'Received' } });
    // Under a client's role the same listing is refused by the server.
    const asClientRole = await runCli(['nodes', '--json'], { ...operatorEnv(server, '_INBOX.client'), PPOS_NATS_USER: 'ppos-client', PPOS_NATS_PASS: passwords.PPOS_CLIENT_PASSWORD });
    expect(asClientRole.code).toBe(1);
    expect(asClientRole.stderr).toMatch(/Permissions Violation for Publish to "ppos.nodes.stats"/);
  });

  it('ends a command at once, exit 1, when the password is wrong, naming the failure and not the password', async () => {
    const wrong = `nope-${randomBytes(6).toString('hex')}`;
    const result = await runCli(['send', 'inventory', 'sec-3', 'Receive', '{"qty": 1}'], {
      PPOS_NATS_URL: `nats://ppos-client:${wrong}@${hostOf(server)}`,
      PPOS_NATS_INBOX_PREFIX: '_INBOX.client',
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/authentication failed/);
    expect(result.stderr).not.toMatch(/not reachable yet|cannot reach NATS/);
    expect(result.stderr + result.stdout).not.toContain(wrong);
  });
});

describe('deploy/nats/accounts.conf: nodes in their own account', () => {
  let server: PrivateNatsServer;
  let node: RunningNode;

  beforeAll(async () => {
    server = await PrivateNatsServer.start({ config: shipped('accounts.conf'), env: passwords });
    node = await startNode(resolveConfig({ nats: asNode(server), db: db.url, node: 'account-node' }, {}), silentLogger);
  });

  afterAll(async () => {
    await node?.stop();
    await server?.stop();
  });

  it('serves commands and inspections to the clients account through its exports', async () => {
    const client = await PposClient.connect(natsSettings({ nats: `nats://ppos-client:${passwords.PPOS_CLIENT_PASSWORD}@${hostOf(server)}` }, {}));
    try {
      expect(await client.send('inventory', 'acct-1', 'Receive', { qty: 2 })).toMatchObject({ ok: true, state: { onHand: 2 } });
      expect(await client.inspect('inventory', 'acct-1')).toMatchObject({ status: 'active' });
      // A client cannot take commands: its subscription is refused, and the node still answers.
      const refused = refusals(client.nc);
      let stolen = 0;
      client.nc.subscribe(commandSubject('inventory', 'acct-1'), {
        callback: (error) => {
          if (!error) stolen += 1; // an error is the server's refusal of the subscription itself
        },
      });
      await waitFor('the subscription to be refused', () => refused.some((r) => r.includes('Subscription to "ppos.cmd.inventory.acct-1"')));
      expect(await client.send('inventory', 'acct-1', 'Receive', { qty: 2 })).toMatchObject({ ok: true, state: { onHand: 4 } });
      expect(stolen).toBe(0);
    } finally {
      await client.close();
    }
  });

  it('gives the operators account the node listings and the event feed', async () => {
    const env = { PPOS_NATS_URL: `nats://${hostOf(server)}`, PPOS_NATS_USER: 'ppos-operator', PPOS_NATS_PASS: passwords.PPOS_OPERATOR_PASSWORD };
    const nodes = await runCli(['nodes', '--json'], env);
    expect(nodes.code, nodes.stderr).toBe(0);
    expect(JSON.parse(nodes.stdout).nodes).toEqual([expect.objectContaining({ node: 'account-node' })]);
  });
});
