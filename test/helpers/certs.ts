// Throwaway certificates for TLS tests, made with the machine's openssl: a CA, and server or
// client certificates it signs. Everything lives in one temporary folder.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface Certificate {
  readonly cert: string;
  readonly key: string;
}

export class TestCertificates {
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'ppos-certs-'));
  readonly ca: Certificate;

  constructor(caName = 'ppos test CA') {
    this.ca = { cert: this.file('ca.pem'), key: this.file('ca-key.pem') };
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${caName}`, '-keyout', this.ca.key, '-out', this.ca.cert]);
  }

  /** A certificate signed by this CA; `hosts` become its subject alternative names. */
  issue(name: string, options: { hosts?: readonly string[]; client?: boolean } = {}): Certificate {
    const cert = { cert: this.file(`${name}.pem`), key: this.file(`${name}-key.pem`) };
    const request = this.file(`${name}.csr`);
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${name}`, '-keyout', cert.key, '-out', request]);
    const san = (options.hosts ?? []).map((h) => (/^[\d.]+$/.test(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
    const extensions = this.file(`${name}.ext`);
    writeFileSync(
      extensions,
      [
        `extendedKeyUsage = ${options.client ? 'clientAuth' : 'serverAuth'}`,
        ...(san ? [`subjectAltName = ${san}`] : []),
      ].join('\n'),
    );
    openssl(['x509', '-req', '-in', request, '-CA', this.ca.cert, '-CAkey', this.ca.key, '-CAcreateserial', '-days', '2', '-extfile', extensions, '-out', cert.cert]);
    return cert;
  }

  file(name: string): string {
    return path.join(this.dir, name);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function openssl(args: readonly string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore' });
}
