// redactUrl: no password or token of a PostgreSQL or NATS URL reaches a log line or a message.
import { describe, expect, it } from 'vitest';
import { redactUrl } from '../../src/redact.js';

describe('redactUrl', () => {
  it('removes user and password from a PostgreSQL URL and keeps the rest', () => {
    expect(redactUrl('postgres://postgres:s3cret@127.0.0.1:5432/ppos?sslmode=verify-full&sslrootcert=/etc/ppos/ca.crt')).toBe(
      'postgres://127.0.0.1:5432/ppos?sslmode=verify-full&sslrootcert=/etc/ppos/ca.crt',
    );
    expect(redactUrl('postgresql://ppos@db.example.com/ppos')).toBe('postgresql://db.example.com/ppos');
  });

  it('removes a NATS token or user and password', () => {
    expect(redactUrl('nats://t0ken@127.0.0.1:4222')).toBe('nats://127.0.0.1:4222');
    expect(redactUrl('tls://user:pass@nats.example.com:4443')).toBe('tls://nats.example.com:4443');
    expect(redactUrl('user:pass@nats.example.com:4222')).toBe('nats.example.com:4222');
  });

  it('redacts each URL of a comma-separated list', () => {
    expect(redactUrl('postgres://a:pw1@db1/ppos,postgres://b:pw2@db2/ppos, postgres://db3/ppos')).toBe(
      'postgres://db1/ppos,postgres://db2/ppos, postgres://db3/ppos',
    );
    expect(redactUrl('nats://u:p@n1:4222,nats://n2:4222')).toBe('nats://n1:4222,nats://n2:4222');
  });

  it('leaves a URL without userinfo as it is', () => {
    for (const url of ['postgres://127.0.0.1:5432/ppos', 'nats://127.0.0.1:4222', 'postgres://[::1]:5432/ppos', '']) {
      expect(redactUrl(url)).toBe(url);
    }
  });

  it('removes a password holding characters that should have been percent-encoded', () => {
    expect(redactUrl('postgres://postgres:p@ss/w#rd@127.0.0.1/ppos')).toBe('postgres://127.0.0.1/ppos');
    expect(redactUrl('postgres://postgres:p%40ss@[::1]:5432/ppos')).toBe('postgres://[::1]:5432/ppos');
  });

  it('removes too much rather than too little when an @ is in the query', () => {
    expect(redactUrl('postgres://u:pw@db/ppos?application_name=a@b')).not.toContain('pw');
  });
});
