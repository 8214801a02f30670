// `ppos watch` against a forged feed: anyone who may publish on ppos.events.> must not be able
// to write escape sequences or bidi overrides to the operator's terminal through it.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PposClient } from '../../src/client.js';
import type { PrivateNatsServer } from '../../src/nats-server.js';
import { CLI_PATH } from '../../src/spawn.js';
import { startNats } from '../helpers/services.js';

const ACTOR_ID = 'forged-1';
// The contract's feed subject (CONTRACT.md section 5), spelled out: this is what an attacker publishes on.
const FEED_SUBJECT = `ppos.events.inventory.${ACTOR_ID}`;

// Every field a terminal could act on: OSC title + BEL, C1 CSI, ESC CSI, CR, backspace, DEL,
// NEL, the bidi marks, overrides and isolates, and a lone surrogate (JSON's \ud800 escape).
const FORGED = {
  node: 'evil\u001b]0;owned\u0007',
  kind: 'inventory',
  id: ACTOR_ID,
  seq: 1,
  event: { type: 'Received\u009b2J', qty: 5, note: '\u202egnp.exe\u2066x\u2069\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u2067\u2068' },
  messageId: 'm\r\u001b[31mred\ud800\u007f\u0085',
  recordedAt: '2026-01-01T00:00:00.000Z\u0008\u0008\tx',
};

let nats: PrivateNatsServer;
let client: PposClient;

beforeAll(async () => {
  nats = await startNats();
  client = await PposClient.connect(nats.url);
});

afterAll(async () => {
  await client?.close();
  await nats?.stop();
});

/** Runs `ppos watch ... --count 1`, publishing the forged line until it has printed one: stdout as raw bytes. */
async function watchForged(extraArgs: readonly string[], before: readonly unknown[] = []): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  const child = spawn(process.execPath, [CLI_PATH, 'watch', 'inventory', ACTOR_ID, '--count', '1', '--nats', nats.url, ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = once(child, 'close') as Promise<[number | null]>;
  // The watcher subscribes some time after it starts: publish until it has seen one and exited.
  const publisher = setInterval(() => {
    for (const junk of before) client.nc.publish(FEED_SUBJECT, typeof junk === 'string' ? junk : JSON.stringify(junk));
    client.nc.publish(FEED_SUBJECT, JSON.stringify(FORGED));
  }, 100);
  try {
    const [code] = await exited;
    return { code, stdout: Buffer.concat(stdout), stderr };
  } finally {
    clearInterval(publisher);
  }
}

/** Every byte or character of `output` a terminal would act on, as hex, so a failure shows which. */
function terminalActionable(output: Buffer): string[] {
  const found = [...output].filter((b) => (b < 0x20 && b !== 0x0a) || b === 0x7f).map((b) => `byte ${b.toString(16)}`);
  const text = new TextDecoder('utf-8', { fatal: true }).decode(output);
  for (const c of text) {
    const code = c.codePointAt(0)!;
    const c1 = code >= 0x80 && code <= 0x9f;
    const bidi = [0x061c, 0x200e, 0x200f].includes(code) || (code >= 0x202a && code <= 0x202e) || (code >= 0x2066 && code <= 0x2069);
    // A lone surrogate written to a stream comes out as U+FFFD: seeing one means it went through raw.
    if (c1 || bidi || code === 0xfffd) found.push(`U+${code.toString(16).padStart(4, '0')}`);
  }
  return found;
}

describe('ppos watch on a forged feed line', () => {
  it('prints it as one line with every control, bidi and lone-surrogate character escaped', async () => {
    const { code, stdout, stderr } = await watchForged([]);
    expect(code, stderr).toBe(0);
    expect(terminalActionable(stdout)).toEqual([]);
    const text = stdout.toString('utf8');
    expect(text.split('\n')).toEqual([expect.any(String), '']);
    for (const visible of ['\\u009b2J', '\\u001b]0;owned\\u0007', '\\u000d\\u001b[31mred\\ud800\\u007f\\u0085', '\\u0008\\u0008\\u0009x', '\\u202egnp.exe\\u2066x\\u2069']) {
      expect(text).toContain(visible);
    }
  });

  it('with --json prints it escaped, as JSON that still reads back as exactly what was published', async () => {
    const { code, stdout, stderr } = await watchForged(['--json']);
    expect(code, stderr).toBe(0);
    expect(terminalActionable(stdout)).toEqual([]);
    expect(JSON.parse(stdout.toString('utf8'))).toEqual(FORGED);
  });

  it('skips what is not a feed line (no event, wrong types, not JSON) and keeps watching', async () => {
    const junk = ['{"kind":"inventory"', { ...FORGED, event: undefined }, { ...FORGED, event: 'Received' }, { ...FORGED, seq: '7' }, { ...FORGED, id: 'a.b' }, null];
    const { code, stdout, stderr } = await watchForged(['--json'], junk);
    expect(code, stderr).toBe(0);
    expect(JSON.parse(stdout.toString('utf8'))).toEqual(FORGED);
  });
});
