// The embedded default journal (issue 2): a real PostgreSQL that ppos initialises and starts
// in a data folder, which must come back after a kill -9 of the ppos process by reusing the
// postmaster left running, with every committed command, and stop cleanly at the end.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres } from '../../persistence/embedded.js';
import { isAlive } from '../../persistence/local-processes.js';
import { PposClient } from '../../src/client.js';
import type { PrivateNatsServer } from '../../src/nats-server.js';
import { NodeProcess } from '../../src/spawn.js';
import { startNats } from '../helpers/services.js';
import { waitFor } from '../helpers/wait.js';

// Under /tmp, not the working directory: as root the server runs as `postgres`, which must
// be able to reach the folder.
const home = mkdtempSync(path.join(os.tmpdir(), 'ppos-embedded-'));
const dataDir = path.join(home, 'pgdata');

let nats: PrivateNatsServer;
let client: PposClient;
let node: NodeProcess | undefined;

/** The postmaster's pid and port from its lock file, or null when there is none. */
function postmaster(): { pid: number; port: number } | null {
  try {
    const lines = readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n');
    return { pid: Number(lines[0]), port: Number(lines[3]) };
  } catch {
    return null;
  }
}

async function startNode(logs: string[]): Promise<NodeProcess> {
  expect(process.env.PPOS_DATABASE_URL, 'PPOS_DATABASE_URL would bypass the embedded default').toBeUndefined();
  node = new NodeProcess({ nats: nats.url, nodeId: 'embedded-node', args: ['--data-dir', home], onLog: (line) => logs.push(line) });
  await node.ready;
  return node;
}

beforeAll(async () => {
  nats = await startNats();
  client = await PposClient.connect(nats.url);
});

afterAll(async () => {
  await client?.close();
  await node?.crash();
  // Never leave a postmaster behind, whatever failed above.
  const running = postmaster();
  if (running && isAlive(running.pid)) await (await startEmbeddedPostgres({ dataDir })).stop();
  await nats?.stop();
  rmSync(home, { recursive: true, force: true });
});

describe('the embedded PostgreSQL', () => {
  it('initialises a cluster, starts it, takes writes, and stops it', async () => {
    const embedded = await startEmbeddedPostgres({ dataDir });
    expect(embedded.startedHere).toBe(true);
    expect(existsSync(path.join(dataDir, 'PG_VERSION'))).toBe(true);
    const db = new pg.Client({ connectionString: embedded.url });
    await db.connect();
    try {
      await db.query('CREATE TABLE marker (note text)');
      await db.query("INSERT INTO marker VALUES ('written before any node ran')");
      const settings = await db.query<{ fsync: string }>('SHOW fsync');
      expect(settings.rows[0]!.fsync).toBe('on');
    } finally {
      await db.end();
    }
    const { pid } = postmaster()!;
    await embedded.stop();
    expect(postmaster()).toBeNull();
    await waitFor('the postmaster to exit', () => !isAlive(pid));
  });

  it('comes back after a kill -9 of ppos by reusing the orphaned postmaster, with every committed command', async () => {
    const firstLogs: string[] = [];
    const first = await startNode(firstLogs);
    expect(firstLogs.some((line) => line.includes('started embedded PostgreSQL'))).toBe(true);
    const received = await client.send('inventory', 'emb-1', 'Receive', { qty: 10 }, { messageId: 'emb-m1' });
    const reserved = await client.send('inventory', 'emb-1', 'Reserve', { reservationId: 'r1', qty: 3 }, { messageId: 'emb-m2' });
    expect(received).toMatchObject({ ok: true, seq: 1 });
    expect(reserved).toMatchObject({ ok: true, seq: 2 });
    const orphan = postmaster()!;

    await first.crash();
    // ppos is gone; its PostgreSQL is not (detached through pg_ctl), and holds the lock file.
    expect(isAlive(orphan.pid)).toBe(true);

    const secondLogs: string[] = [];
    await startNode(secondLogs);
    expect(secondLogs.some((line) => line.includes('reusing the embedded PostgreSQL already running'))).toBe(true);
    expect(postmaster()).toEqual(orphan);

    expect(await client.send('inventory', 'emb-1', 'Get', undefined)).toMatchObject({
      ok: true,
      seq: 2,
      state: { onHand: 10, reserved: 3, available: 7, openReservations: 1, reservations: [{ id: 'r1', qty: 3 }] },
    });
    expect(await client.send('inventory', 'emb-1', 'Receive', { qty: 10 }, { messageId: 'emb-m1' })).toEqual({ ...received, duplicate: true });
    expect(await client.send('inventory', 'emb-1', 'Consume', { reservationId: 'r1' }, { messageId: 'emb-m3' })).toMatchObject({
      ok: true,
      seq: 3,
      state: { onHand: 7, reserved: 0 },
    });

    const password = readFileSync(path.join(home, 'password'), 'utf8').trim();
    const db = new pg.Client({ host: '127.0.0.1', port: orphan.port, user: 'postgres', password, database: 'ppos' });
    await db.connect();
    try {
      expect((await db.query('SELECT note FROM marker')).rows).toEqual([{ note: 'written before any node ran' }]);
    } finally {
      await db.end();
    }
  });

  it('drains on SIGTERM, and the reused server is stopped cleanly with pg_ctl', async () => {
    const { pid } = postmaster()!;
    expect(await node!.stop()).toBe(0);
    // The node did not start this server, so it left it running for whoever did.
    expect(isAlive(pid)).toBe(true);

    const embedded = await startEmbeddedPostgres({ dataDir });
    expect(embedded.startedHere).toBe(false);
    await embedded.stop();
    expect(postmaster()).toBeNull();
    await waitFor('the postmaster to exit', () => !isAlive(pid));
  });
});
