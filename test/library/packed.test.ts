// The tool-crib example as a user has it: a project outside this repository that installs ppos
// from `npm pack`, type-checks against the packed declarations, runs a node with its own kind
// beside the built-in ones, and reads its actors with the packed CLI and dashboard.
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PrivateNatsServer } from '../../src/nats-server.js';
import { createTestDatabase, startNats, type TestDatabase } from '../helpers/services.js';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
const rootPackage = (await import(join(ROOT, 'package.json'), { with: { type: 'json' } })).default as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

let db: TestDatabase;
let nats: PrivateNatsServer;
let project: string;

beforeAll(async () => {
  db = await createTestDatabase();
  nats = await startNats();
  project = await mkdtemp(join(tmpdir(), 'ppos-tool-crib-'));
  // The package as published (built already: `npm test` builds first).
  const packed = await run('npm', ['pack', '--ignore-scripts', '--pack-destination', project, '--json'], { cwd: ROOT, maxBuffer: 64 * 1024 * 1024 });
  const tarball = join(project, (JSON.parse(packed.stdout) as { filename: string }[])[0]!.filename);
  await writeFile(
    join(project, 'package.json'),
    JSON.stringify({
      name: 'tool-crib',
      private: true,
      type: 'module',
      dependencies: { ppos: `file:${tarball}`, zod: rootPackage.dependencies.zod },
      devDependencies: { '@types/node': rootPackage.devDependencies['@types/node'] },
    }),
  );
  await writeFile(
    join(project, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: true, outDir: 'dist', rootDir: '.', types: ['node'] }, include: ['*.ts'] }),
  );
  for (const file of ['tool.ts', 'main.ts']) await copyFile(join(ROOT, 'examples', 'tool-crib', file), join(project, file));
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel', 'error'], { cwd: project, maxBuffer: 64 * 1024 * 1024 });
}, 300_000);

afterAll(async () => {
  await nats?.stop();
  await db?.drop();
  if (project) await rm(project, { recursive: true, force: true });
});

describe('the tool-crib example, outside the repository, from the packed package', () => {
  it('type-checks, runs a node with its kind, and the packed CLI and dashboard show its actors', async () => {
    await run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(project, 'tsconfig.json')], { cwd: project });
    const env = { ...process.env, PPOS_NATS_URL: nats.url, PPOS_DATABASE_URL: db.url, PPOS_NODE_ID: 'tool-crib-test', PPOS_FOLLOWERS: 'none' };
    const main = await run(process.execPath, ['dist/main.js', 'wrench-7'], { cwd: project, env });
    expect(main.stdout).toMatch(/^CheckOut: \{"ok":true/m);
    expect(main.stdout).toMatch(/^Get: \{"ok":true.*"status":"in_crib"/m);
    // The tool's saga: the drill's bits held at the inventory while it is out.
    expect(main.stdout).toMatch(/^CheckOut drill: \{"ok":true.*"status":"checked_out"/m);
    expect(main.stdout).toMatch(/^bits: \{"ok":true.*"reserved":4/m);
    expect(main.stdout).toMatch(/^Return drill: \{"ok":true.*"status":"in_crib"/m);

    const cli = join(project, 'node_modules', 'ppos', 'dist', 'src', 'cli.js');
    const ppos = async (...args: string[]) => (await run(process.execPath, [cli, ...args, '--kinds', 'dist/tool.js'], { cwd: project, env })).stdout;
    const history = await ppos('history', 'tool', 'wrench-7', '--json');
    expect(history).toMatch(/CheckedOut[\s\S]*Returned[\s\S]*RepairDone/);
    expect(JSON.parse(await ppos('state', 'tool', 'wrench-7', '--at', '2', '--json'))).toMatchObject({ seq: 2, state: { status: 'in_repair' } });
    expect(JSON.parse(await ppos('verify', 'tool', 'wrench-7', '--no-live'))).toMatchObject({ confidence_status: 'trusted', events_processed: 3 });

    // `get` asks a node: one started by the packed CLI with the user's kinds.
    const node = spawn(process.execPath, [cli, 'start', '--kinds', 'dist/tool.js'], { cwd: project, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const dashboard = spawn(process.execPath, [cli, 'dashboard', '--port', '0', '--kinds', 'dist/tool.js'], { cwd: project, env, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let started = '';
      node.stdout!.on('data', (chunk: Buffer) => (started += chunk.toString()));
      node.stderr!.on('data', (chunk: Buffer) => (started += chunk.toString()));
      for (let i = 0; i < 300 && !started.includes('node started'); i += 1) await new Promise((resolve) => setTimeout(resolve, 100));
      expect(started, started).toContain('node started');
      expect(JSON.parse(await ppos('get', 'tool', 'wrench-7', '--json'))).toMatchObject({ state: { status: 'in_crib', checkouts: 1 } });

      const [line] = (await once(dashboard.stdout!, 'data')) as [Buffer];
      const url = /http:\/\/\S+/.exec(line.toString())![0].replace(/\/$/, '');
      const kinds = (await (await fetch(`${url}/api/kinds`)).json()) as unknown;
      expect(JSON.stringify(kinds)).toContain('"tool"');
      const events = (await (await fetch(`${url}/api/actors/tool/wrench-7/events`)).json()) as { events: { event: { type: string } }[] };
      expect(events.events.map((e) => e.event.type)).toEqual(['CheckedOut', 'Returned', 'RepairDone']);
    } finally {
      node.kill('SIGTERM');
      dashboard.kill('SIGTERM');
      await Promise.all([once(node, 'exit'), once(dashboard, 'exit')]);
    }
  }, 180_000);
});
