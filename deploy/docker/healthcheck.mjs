// The container's HEALTHCHECK: GET /healthz on the node's own HTTP port (PPOS_HTTP, HOST:PORT or
// PORT) over the loopback. node itself, since the slim image has no curl. Exit 0 healthy, 1 not.
const listen = process.env.PPOS_HTTP ?? '9464';
const port = listen.slice(listen.lastIndexOf(':') + 1);
try {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2_000) });
  process.exit(res.ok ? 0 : 1);
} catch {
  process.exit(1);
}
