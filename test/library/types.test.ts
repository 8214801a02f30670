// The public API's types, checked by the compiler: test/types/typed-api.ts holds right uses,
// which must compile, and deliberate mistakes marked @ts-expect-error, each of which must be a
// compile error (tsc reports a marker with no error under it). Against the built declarations.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
const tsc = (project: string) =>
  run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, project)], { cwd: ROOT }).then(
    () => '',
    (error: { stdout?: string }) => error.stdout ?? String(error),
  );

describe('the public API is typed', () => {
  it('compiles right uses and refuses every marked mistake in the client and in a kind declaration', async () => {
    expect(await tsc('test/types/tsconfig.json')).toBe('');
  }, 120_000);

  it('type-checks the tool-crib example against the package declarations', async () => {
    expect(await tsc('examples/tool-crib/tsconfig.json')).toBe('');
  }, 120_000);
});
