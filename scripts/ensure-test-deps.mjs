#!/usr/bin/env node
// Run by `npm test` before vitest: installs what the suite needs beyond npm packages, so the
// README's test command passes on a fresh machine. Today that is Debian's Chromium, which
// test/inspection/dashboard.test.ts drives at this path through playwright-core.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const CHROMIUM = '/usr/bin/chromium';
const INSTALL = 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium';

function fail(message) {
  process.stderr.write(`ensure-test-deps: ${message}\n`);
  process.exit(1);
}

function ensureChromium() {
  if (existsSync(CHROMIUM)) return;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot) fail(`the dashboard tests need Debian's Chromium at ${CHROMIUM}; install it as root with: ${INSTALL}`);
  process.stderr.write(`ensure-test-deps: ${CHROMIUM} is missing; installing it: ${INSTALL}\n`);
  const installed = spawnSync('sh', ['-c', INSTALL], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (installed.status !== 0 || !existsSync(CHROMIUM)) fail(`installing Chromium failed (exit ${installed.status}); run it yourself: ${INSTALL}`);
}

ensureChromium();
