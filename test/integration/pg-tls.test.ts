// PostgreSQL over TLS (security issue): a journal URL with `sslmode=verify-full&sslrootcert=FILE`
// connects only to a server whose certificate chains to that CA and names the host; a server
// that takes TLS connections alone refuses a plain one. A throwaway CA and a PostgreSQL cluster
// of its own (the embedded binaries, hostssl lines only in pg_hba.conf) on a free port.
import { execFile } from 'node:child_process';
import { appendFileSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresBinaries, type Binaries, type RunAs } from '../../persistence/embedded.js';
import { freePort } from '../../persistence/local-processes.js';
import { openJournal } from '../../src/database.js';
import { waitFor } from '../helpers/wait.js';

const run = promisify(execFile);
const silent = pino({ level: 'silent' });
const home = mkdtempSync(path.join(os.tmpdir(), 'ppos-pg-tls-'));
const dataDir = path.join(home, 'pgdata');
const inHome = (file: string): string => path.join(home, file);
const password = `pw-${process.pid}-${Date.now()}`;

let bins: Binaries;
let user: RunAs;
let port: number;

async function openssl(args: string[]): Promise<void> {
  await run('openssl', args, { cwd: home });
}

const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A self-signed CA: `<name>.crt`, `<name>.key`. */
async function certificateAuthority(name: string): Promise<void> {
  await openssl(['req', '-x509', ...newKey, '-days', '1', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.crt`]);
}

/** `<name>.crt` and `<name>.key` for `commonName`, signed by the CA `ca`, with these X.509 extensions. */
async function certificate(name: string, commonName: string, extensions: string[], ca: string): Promise<void> {
  await openssl(['req', ...newKey, '-subj', `/CN=${commonName}`, '-keyout', `${name}.key`, '-out', `${name}.csr`]);
  writeFileSync(inHome(`${name}.ext`), `${extensions.join('\n')}\n`);
  await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '1', '-extfile', `${name}.ext`, '-out', `${name}.crt`]);
}

/** The server reads its keys as its own user, and only from a file no one else may read. */
function giveToServer(file: string): void {
  if (user.uid !== undefined) chownSync(inHome(file), user.uid, user.gid!);
}

async function pgCtl(args: string[]): Promise<void> {
  await run(bins.pg_ctl, args, { ...user, env: { ...process.env, LC_ALL: 'C' } });
}

const url = (who: string, database: string, query: string): string => `postgres://${who}@127.0.0.1:${port}/${database}${query ? `?${query}` : ''}`;
const asPostgres = (query: string): string => url(`postgres:${password}`, 'ppos', query);
const verifyFull = (ca: string): string => `sslmode=verify-full&sslrootcert=${inHome(`${ca}.crt`)}`;

/** Node's codes for a chain that ends in no trusted CA (this server sends its CA along: ssl_ca_file is set). */
const UNTRUSTED_CERTIFICATE = /^(SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)$/;

/** Opens the journal as ppos does (migrations included) and reports whether the session is encrypted. */
async function openOverTls(databaseUrl: string): Promise<{ ssl: boolean; tables: number }> {
  const opened = await openJournal({ databaseUrl, dataDir: home }, silent, { waitForDatabaseMs: 0, poolSize: 1 });
  try {
    const [session] = (await opened.journal.first.pool.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).rows;
    const [journal] = (
      await opened.journal.first.pool.query<{ tables: number }>("SELECT count(*)::int AS tables FROM pg_tables WHERE tablename LIKE '%events'")
    ).rows;
    return { ssl: session!.ssl, tables: journal!.tables };
  } finally {
    await opened.close();
  }
}

/** Why opening the journal failed: the driver's or the server's error under openJournal's message. */
async function refusal(databaseUrl: string): Promise<Error & { code?: string }> {
  const error = await openOverTls(databaseUrl).then(
    () => null,
    (failure: Error) => failure,
  );
  expect(error, 'the journal opened').not.toBeNull();
  expect(error!.message).toMatch(/^cannot reach the journal database/);
  return error!.cause as Error & { code?: string };
}

beforeAll(async () => {
  ({ bins, user } = await postgresBinaries());
  if (user.uid !== undefined) chownSync(home, user.uid, user.gid!);
  await certificateAuthority('ca');
  await certificateAuthority('other-ca');
  await certificate('server', '127.0.0.1', ['subjectAltName=IP:127.0.0.1,DNS:localhost', 'extendedKeyUsage=serverAuth'], 'ca');
  await certificate('elsewhere', 'db.elsewhere.invalid', ['subjectAltName=DNS:db.elsewhere.invalid', 'extendedKeyUsage=serverAuth'], 'ca');
  await certificate('client', 'ppos_cert', ['extendedKeyUsage=clientAuth'], 'ca');
  giveToServer('server.key');
  giveToServer('elsewhere.key');

  writeFileSync(inHome('pwfile'), `${password}\n`, { mode: 0o600 });
  giveToServer('pwfile');
  await run(bins.initdb, ['-D', dataDir, '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${inHome('pwfile')}`, '--locale=C', '--no-instructions'], {
    ...user,
    env: { ...process.env, LC_ALL: 'C' },
  });
  // TLS or nothing: no `host` (plain or TLS) and no `local` line.
  writeFileSync(
    path.join(dataDir, 'pg_hba.conf'),
    'hostssl all ppos_cert 127.0.0.1/32 cert\nhostssl all all 127.0.0.1/32 scram-sha-256\n',
  );
  // In postgresql.conf, not on the command line, so that ALTER SYSTEM can swap the certificate later.
  appendFileSync(
    path.join(dataDir, 'postgresql.conf'),
    `ssl = on\nssl_cert_file = '${inHome('server.crt')}'\nssl_key_file = '${inHome('server.key')}'\nssl_ca_file = '${inHome('ca.crt')}'\n`,
  );
  port = await freePort();
  await pgCtl(['start', '-w', '-D', dataDir, '-l', inHome('postgres.log'), '-o', `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''`]);

  const admin = new pg.Client({ connectionString: url(`postgres:${password}`, 'postgres', verifyFull('ca')) });
  await admin.connect();
  try {
    await admin.query('CREATE DATABASE ppos');
    await admin.query('CREATE ROLE ppos_cert LOGIN');
    await admin.query('CREATE DATABASE ppos_cert OWNER ppos_cert');
  } finally {
    await admin.end();
  }
});

afterAll(async () => {
  await pgCtl(['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '30']).catch(() => undefined);
  rmSync(home, { recursive: true, force: true });
});

describe('the journal over TLS to PostgreSQL', () => {
  it('connects and migrates with sslmode=verify-full&sslrootcert=<the CA>', async () => {
    const journal = await openOverTls(asPostgres(verifyFull('ca')));
    expect(journal.ssl).toBe(true);
    expect(journal.tables).toBeGreaterThan(0);
  });

  it('is refused by the server in plain text', async () => {
    const cause = await refusal(asPostgres(''));
    expect(cause.code).toBe('28000');
    expect(cause.message).toMatch(/no pg_hba.conf entry .*no encryption/);
  });

  it('refuses a server whose certificate does not chain to the CA given', async () => {
    const cause = await refusal(asPostgres(verifyFull('other-ca')));
    expect(cause.code).toMatch(UNTRUSTED_CERTIFICATE);
  });

  it('checks against the system CAs, not nothing, for sslmode=require without sslrootcert (pg 8 reads require as verify-full)', async () => {
    const cause = await refusal(asPostgres('sslmode=require'));
    expect(cause.code).toMatch(UNTRUSTED_CERTIFICATE);
  });

  it('logs in by client certificate with sslcert and sslkey, and not without them', async () => {
    const withCertificate = `${verifyFull('ca')}&sslcert=${inHome('client.crt')}&sslkey=${inHome('client.key')}`;
    expect(await openOverTls(url('ppos_cert', 'ppos_cert', withCertificate))).toMatchObject({ ssl: true });
    const cause = await refusal(url('ppos_cert', 'ppos_cert', verifyFull('ca')));
    expect(cause.code).toBe('28000');
  });

  // Last: it swaps the server's certificate for one naming another host.
  it('refuses a certificate from the right CA for another host name', async () => {
      const admin = new pg.Client({ connectionString: asPostgres(verifyFull('ca')) });
    await admin.connect();
    try {
      await admin.query(`ALTER SYSTEM SET ssl_cert_file = '${inHome('elsewhere.crt')}'`);
      await admin.query(`ALTER SYSTEM SET ssl_key_file = '${inHome('elsewhere.key')}'`);
      await admin.query('SELECT pg_reload_conf()');
    } finally {
      await admin.end();
    }
    const cause = await waitFor('the server to present the other certificate', () =>
      openOverTls(asPostgres(verifyFull('ca'))).then(
        () => null,
        (error: Error) => error.cause as Error & { code?: string },
      ),
    );
    expect(cause.code).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    // The chain is still good: only the name is wrong (libpq's verify-ca does not check it).
    expect(await openOverTls(asPostgres(`uselibpqcompat=true&sslmode=verify-ca&sslrootcert=${inHome('ca.crt')}`))).toMatchObject({ ssl: true });
  });
});
