// NATS settings (CONTRACT.md section 1): credentials from the URL or the environment, TLS
// required by tls:// or any TLS option, one way to log in, and nothing secret in what prints.
import { describe, expect, it } from 'vitest';
import { describeServers, natsEnvironment, natsSettings, NatsSettingsError } from '../../src/nats.js';

describe('NATS settings', () => {
  it('takes user and password from the URL, and keeps them out of the servers', () => {
    const settings = natsSettings({ nats: 'nats://alice:s%40cret@nats.example:4222' }, {});
    expect(settings).toEqual({ servers: ['nats://nats.example:4222'], user: 'alice', pass: 's@cret' });
    expect(describeServers(settings)).not.toContain('s@cret');
  });

  it('reads nats://token@host as a token, on any of several servers', () => {
    expect(natsSettings({ nats: 'nats://a:4222, nats://t0ken@b:4222' }, {})).toEqual({ servers: ['nats://a:4222', 'nats://b:4222'], token: 't0ken' });
  });

  it('takes credentials from the environment when the URL has none, and the URL over the environment', () => {
    const env = { PPOS_NATS_URL: 'nats://h:1', PPOS_NATS_USER: 'bob', PPOS_NATS_PASS: 'pw' };
    expect(natsSettings({}, env)).toMatchObject({ servers: ['nats://h:1'], user: 'bob', pass: 'pw' });
    expect(natsSettings({ nats: 'nats://carol:pw2@h:1' }, env)).toMatchObject({ user: 'carol', pass: 'pw2' });
    expect(natsSettings({}, { PPOS_NATS_TOKEN: 'tok' })).toMatchObject({ token: 'tok' });
  });

  it('requires TLS for tls:// and for any TLS option, and not otherwise', () => {
    expect(natsSettings({ nats: 'tls://h:4222' }, {}).tls).toEqual({});
    expect(natsSettings({ nats: 'nats://h:4222', natsTlsCa: '/ca.pem' }, {}).tls).toEqual({ caFile: '/ca.pem' });
    expect(natsSettings({}, { PPOS_NATS_TLS_CERT: '/c.pem', PPOS_NATS_TLS_KEY: '/k.pem' }).tls).toEqual({ certFile: '/c.pem', keyFile: '/k.pem' });
    expect(natsSettings({ nats: 'nats://h:4222' }, {}).tls).toBeUndefined();
  });

  it('refuses what cannot work: two ways to log in, a user without a password, half a client certificate, another scheme, a bad inbox prefix', () => {
    expect(() => natsSettings({ nats: 'nats://u:p@h', natsCreds: '/x.creds' }, {})).toThrow(/one NATS authentication/);
    expect(() => natsSettings({}, { PPOS_NATS_USER: 'u' })).toThrow(/needs a password/);
    expect(() => natsSettings({ natsTlsCert: '/c.pem' }, {})).toThrow(/both --nats-tls-cert and --nats-tls-key/);
    expect(() => natsSettings({ nats: 'http://h:4222' }, {})).toThrow(NatsSettingsError);
    expect(() => natsSettings({ natsInboxPrefix: '_INBOX.>' }, {})).toThrow(/inbox-prefix/);
    // The message names the URL without its secret.
    expect(() => natsSettings({ nats: 'nats://u:hunter2@' }, {})).toThrow(/^(?!.*hunter2)/);
  });

  it('hands a child process everything through its environment, URL without userinfo', () => {
    const settings = natsSettings({ nats: 'tls://u:p@h:1', natsTlsCa: '/ca', natsInboxPrefix: '_INBOX.u' }, {});
    expect(natsEnvironment(settings)).toEqual({
      PPOS_NATS_URL: 'tls://h:1',
      PPOS_NATS_USER: 'u',
      PPOS_NATS_PASS: 'p',
      PPOS_NATS_TLS_CA: '/ca',
      PPOS_NATS_INBOX_PREFIX: '_INBOX.u',
    });
    // And what the child reads back is the same.
    expect(natsSettings({}, natsEnvironment(settings))).toEqual(settings);
  });
});
