// The node's HTTP port for operators (`ppos start --http HOST:PORT`, CONTRACT.md section 9):
// /metrics (Prometheus text), /healthz (the process is up) and /readyz (200 only while the
// node holds its shards, reaches NATS and PostgreSQL, and is not draining). Read-only, no
// request body is read, nothing else is served.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { NodeMetrics } from './metrics.js';

export interface Readiness {
  /** Why the node is not ready, or null when it is. */
  notReady(): Promise<string | null>;
}

export interface HttpEndpoint {
  readonly url: string;
  close(): Promise<void>;
}

export async function startHttpEndpoint(host: string, port: number, metrics: NodeMetrics, readiness: Readiness): Promise<HttpEndpoint> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8'): void => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'only GET\n');
    if (path === '/healthz') return send(200, 'ok\n');
    if (path === '/readyz') {
      void readiness.notReady().then(
        (why) => (why === null ? send(200, 'ready\n') : send(503, `not ready: ${why}\n`)),
        (error: Error) => send(503, `not ready: ${error.message}\n`),
      );
      return;
    }
    if (path === '/metrics') {
      void metrics.text().then(
        (text) => send(200, text, metrics.contentType),
        (error: Error) => send(500, `metrics failed: ${error.message}\n`),
      );
      return;
    }
    send(404, 'not found: /metrics, /healthz, /readyz\n');
  });
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${shown}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** `HOST:PORT`, `[v6]:PORT` or `PORT` (loopback) → where to listen. */
export function parseListen(value: string): { host: string; port: number } | string {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(value) ?? (/^(\d{1,5})$/.exec(value) ? [value, undefined, '127.0.0.1', value] : null);
  if (!match) return `must be HOST:PORT or PORT, not ${JSON.stringify(value)}`;
  const port = Number(match[3]);
  if (port > 65_535) return `port ${port} is above 65535`;
  return { host: match[1] ?? match[2]!, port };
}
