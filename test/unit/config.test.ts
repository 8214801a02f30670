// Configuration (CONTRACT.md 1): a flag wins over its environment variable, which wins over
// the default; an unset or empty database URL means the embedded PostgreSQL.
import { describe, expect, it } from 'vitest';
import { resolveConfig, UsageError } from '../../src/config.js';

describe('node configuration', () => {
  it('serves HTTP only when asked, on the loopback for a bare port', () => {
    expect(resolveConfig({}, {}).http).toBeUndefined();
    expect(resolveConfig({ http: '9464' }, {}).http).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(resolveConfig({}, { PPOS_HTTP: '0.0.0.0:9464' }).http).toEqual({ host: '0.0.0.0', port: 9464 });
    expect(resolveConfig({ http: '[::1]:9464' }, {}).http).toEqual({ host: '::1', port: 9464 });
    expect(() => resolveConfig({ http: 'host:99999' }, {})).toThrow(UsageError);
    expect(() => resolveConfig({ http: 'nonsense' }, {})).toThrow(/--http must be HOST:PORT or PORT/);
  });

  it('has the documented defaults', () => {
    const config = resolveConfig({}, {});
    expect(config).toMatchObject({
      nats: { servers: ['nats://127.0.0.1:4222'] },
      databaseUrl: undefined,
      dataDir: '.ppos',
      snapshotEvery: 100,
      mailboxCapacity: 1000,
      passivateAfterMs: 120_000,
      maxActiveActors: 100_000,
      dedupeRetentionHours: undefined,
      shardCount: 256,
      leaseMs: 6_000,
      commitBatch: 256,
      commitLingerMs: 0,
      commitInFlight: 4,
    });
    expect(config.nodeId).toMatch(/^[0-9A-Z]{26}$/);
  });

  it('takes the environment over the default and a flag over the environment', () => {
    const env = { PPOS_NATS_URL: 'nats://env:4222', PPOS_DATABASE_URL: 'postgres://env/db', PPOS_SNAPSHOT_EVERY: '7', PPOS_NODE_ID: 'env-node' };
    expect(resolveConfig({}, env)).toMatchObject({ nats: { servers: ['nats://env:4222'] }, databaseUrl: 'postgres://env/db', snapshotEvery: 7, nodeId: 'env-node' });
    expect(resolveConfig({ nats: 'nats://flag:4222', db: 'postgresql://flag/db', snapshotEvery: '9', node: 'flag-node' }, env)).toMatchObject({
      nats: { servers: ['nats://flag:4222'] },
      databaseUrl: 'postgresql://flag/db',
      snapshotEvery: 9,
      nodeId: 'flag-node',
    });
  });

  it('takes the group commit settings from flags or the environment; a linger of 0 is allowed', () => {
    const env = { PPOS_COMMIT_BATCH: '64', PPOS_COMMIT_LINGER_MS: '2', PPOS_COMMIT_IN_FLIGHT: '2' };
    expect(resolveConfig({}, env)).toMatchObject({ commitBatch: 64, commitLingerMs: 2, commitInFlight: 2 });
    expect(resolveConfig({ commitBatch: '1', commitLingerMs: '0', commitInFlight: '8' }, env)).toMatchObject({ commitBatch: 1, commitLingerMs: 0, commitInFlight: 8 });
  });

  it('treats an empty PPOS_DATABASE_URL as unset: the embedded default', () => {
    expect(resolveConfig({}, { PPOS_DATABASE_URL: '' }).databaseUrl).toBeUndefined();
  });

  it.each<[string, Record<string, string>]>([
    ['a database URL of another scheme', { db: 'mysql://x/y' }],
    ['a node id with a dot', { node: 'a.b' }],
    ['a zero snapshot interval', { snapshotEvery: '0' }],
    ['a fractional mailbox size', { mailboxSize: '1.5' }],
    ['a mailbox size that is not a number', { mailboxSize: 'lots' }],
    ['a zero commit batch', { commitBatch: '0' }],
    ['a commit batch above the bound', { commitBatch: '5000' }],
    ['a negative commit linger', { commitLingerMs: '-1' }],
    ['a commit linger above the bound', { commitLingerMs: '101' }],
    ['zero commits in flight', { commitInFlight: '0' }],
  ])('refuses %s as bad usage', (_what, raw) => {
    expect(() => resolveConfig(raw, {})).toThrow(UsageError);
  });
});
