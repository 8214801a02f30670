// TLS to NATS (CONTRACT.md section 1): a real nats-server with a throwaway CA, plain TLS and
// mutual TLS. A tls:// URL or any --nats-tls-* option means TLS is required: a server that does
// not offer it is refused, and a handshake that cannot succeed ends the command at once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PposClient } from '../../src/client.js';
import { resolveConfig } from '../../src/config.js';
import { PrivateNatsServer } from '../../src/nats-server.js';
import { natsSettings } from '../../src/nats.js';
import { startNode, type RunningNode } from '../../src/node.js';
import { TestCertificates, type Certificate } from '../helpers/certs.js';
import { runCli } from '../helpers/cli.js';
import { silentLogger } from '../helpers/node.js';
import { createTestDatabase, startNats, type TestDatabase } from '../helpers/services.js';

let db: TestDatabase;
let certs: TestCertificates;
let serverCert: Certificate;
let clientCert: Certificate;
let otherCa: TestCertificates;

const tlsBlock = (mutual: boolean): string =>
  `tls {\n  cert_file: "${serverCert.cert}"\n  key_file: "${serverCert.key}"\n${mutual ? `  ca_file: "${certs.ca.cert}"\n  verify: true\n` : ''}  timeout: 2\n}`;

beforeAll(async () => {
  db = await createTestDatabase();
  certs = new TestCertificates();
  serverCert = certs.issue('nats-server', { hosts: ['127.0.0.1', 'localhost'] });
  clientCert = certs.issue('ppos-node', { client: true });
  otherCa = new TestCertificates('some other CA');
});

afterAll(async () => {
  certs?.remove();
  otherCa?.remove();
  await db?.drop();
});

describe('NATS with TLS', () => {
  let server: PrivateNatsServer;
  let node: RunningNode;

  beforeAll(async () => {
    server = await PrivateNatsServer.start({ config: tlsBlock(false), tls: true });
    node = await startNode(resolveConfig({ nats: server.url, natsTlsCa: certs.ca.cert, db: db.url, node: 'tls-node' }, {}), silentLogger);
  });

  afterAll(async () => {
    await node?.stop();
    await server?.stop();
  });

  it('serves commands to a client that trusts the CA', async () => {
    const client = await PposClient.connect(natsSettings({ nats: server.url, natsTlsCa: certs.ca.cert }, {}));
    try {
      expect(await client.send('inventory', 'tls-1', 'Receive', { qty: 1 })).toMatchObject({ ok: true });
    } finally {
      await client.close();
    }
    const cli = await runCli(['send', 'inventory', 'tls-1', 'Receive', '{"qty": 1}'], { PPOS_NATS_URL: server.url, PPOS_NATS_TLS_CA: certs.ca.cert });
    expect(cli.code, cli.stderr).toBe(0);
  });

  it('ends at once, exit 1, when the server certificate is not from a trusted CA', async () => {
    const cli = await runCli(['send', 'inventory', 'tls-1', 'Receive', '{"qty": 1}'], { PPOS_NATS_URL: server.url, PPOS_NATS_TLS_CA: otherCa.ca.cert });
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/TLS handshake failed/);
    expect(cli.stderr).not.toMatch(/not reachable yet/);
  });
});

describe('NATS with mutual TLS', () => {
  let server: PrivateNatsServer;
  let node: RunningNode;

  beforeAll(async () => {
    server = await PrivateNatsServer.start({ config: tlsBlock(true), tls: true });
    node = await startNode(
      resolveConfig({ nats: server.url, natsTlsCa: certs.ca.cert, natsTlsCert: clientCert.cert, natsTlsKey: clientCert.key, db: db.url, node: 'mtls-node' }, {}),
      silentLogger,
    );
  });

  afterAll(async () => {
    await node?.stop();
    await server?.stop();
  });

  it('serves a client presenting a certificate from the CA', async () => {
    const cli = await runCli(['send', 'inventory', 'mtls-1', 'Receive', '{"qty": 2}'], {
      PPOS_NATS_URL: server.url,
      PPOS_NATS_TLS_CA: certs.ca.cert,
      PPOS_NATS_TLS_CERT: clientCert.cert,
      PPOS_NATS_TLS_KEY: clientCert.key,
    });
    expect(cli.code, cli.stderr).toBe(0);
    expect(JSON.parse(cli.stdout)).toMatchObject({ ok: true, state: { onHand: 2 } });
  });

  it('refuses, at once and by name, a client without a certificate (it used to hang)', async () => {
    const cli = await runCli(['send', 'inventory', 'mtls-1', 'Receive', '{"qty": 2}'], { PPOS_NATS_URL: server.url, PPOS_NATS_TLS_CA: certs.ca.cert });
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/NATS at tls:\/\/127\.0\.0\.1:\d+: (TLS handshake failed|authentication failed)/);
  });
});

describe('tls:// against a server without TLS', () => {
  it('is refused, never used in plain text', async () => {
    const plain = await startNats();
    try {
      const url = plain.url.replace('nats://', 'tls://');
      const cli = await runCli(['send', 'inventory', 'plain-1', 'Get'], { PPOS_NATS_URL: url });
      expect(cli.code).toBe(1);
      expect(cli.stderr).toMatch(/TLS is required .* but the server does not offer it/);
      // So is a TLS option with a nats:// URL.
      const withCa = await runCli(['send', 'inventory', 'plain-1', 'Get'], { PPOS_NATS_URL: plain.url, PPOS_NATS_TLS_CA: certs.ca.cert });
      expect(withCa.code).toBe(1);
      expect(withCa.stderr).toMatch(/TLS is required/);
    } finally {
      await plain.stop();
    }
  });
});
