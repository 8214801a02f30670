// The dashboard page: Preact, built by Vite into dist/dashboard (served by `ppos dashboard`).
// `npx vite --config dashboard/vite.config.ts` serves it with hot reload against a running
// `ppos dashboard` on port 4280 (the API and the event stream are proxied).
import { fileURLToPath } from 'node:url';
import preact from '@preact/preset-vite';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  plugins: [preact()],
  build: {
    outDir: fileURLToPath(new URL('../dist/dashboard', import.meta.url)),
    emptyOutDir: true,
    sourcemap: true,
  },
  server: { proxy: { '/api': 'http://127.0.0.1:4280' } },
});
