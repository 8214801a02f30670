import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// Reading a V8 .cpuprofile: where the node's CPU went, by function and by concern.
// Each sample is charged to a concern by walking its stack from the leaf: JSON, hashing,
// GC and idle are recognised at the leaf; otherwise the first frame that belongs to a
// library or to ppos owns the sample, so socket writes count for the library that wrote
// (pg or NATS), not for "node internals".

export interface CpuProfile {
  readonly nodes: {
    readonly id: number;
    readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
    readonly children?: number[];
  }[];
  readonly samples: number[];
  readonly timeDeltas: number[];
}

type Frame = CpuProfile['nodes'][number]['callFrame'];

const SPECIAL = new Set(['(idle)', '(garbage collector)', '(program)', '(root)']);

function libraryOf(url: string): string | undefined {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (!m) return undefined;
  const pkg = m[1]!;
  if (pkg.startsWith('@nats-io/')) return 'NATS client (@nats-io)';
  if (pkg === 'pg' || pkg.startsWith('pg-') || pkg === 'pgpass') return 'pg (node-postgres)';
  if (pkg === 'xstate') return 'XState';
  if (pkg === 'zod') return 'zod';
  if (pkg === 'pino' || pkg === 'sonic-boom' || pkg === 'thread-stream') return 'pino';
  if (pkg === 'safe-stable-stringify') return 'safe-stable-stringify (fingerprints, hashes)';
  return pkg;
}

function projectOf(url: string): string | undefined {
  const m = /\/dist\/(runtime|persistence|actors|src)\/([^/]+)\.js$/.exec(url);
  return m ? `ppos ${m[1]}/${m[2]}` : undefined;
}

const isJson = (f: Frame): boolean => f.url === '' && (f.functionName === 'stringify' || f.functionName === 'parse' || f.functionName === 'JSON.parse' || f.functionName === 'JSON.stringify');
const isNativeWrite = (f: Frame): boolean => f.url === '' && /^(writeBuffer|writev|writeUtf8String|writeLatin1String|writeAsciiString)$/.test(f.functionName);
const isModuleLoading = (f: Frame): boolean => f.url.startsWith('node:internal/modules') || f.functionName === 'compileForInternalLoader';

/** A concern for one sample, from its stack (leaf first). */
function concernOf(stack: Frame[]): string {
  const leaf = stack[0]!;
  if (SPECIAL.has(leaf.functionName)) return leaf.functionName === '(program)' ? '(program: V8/native, unattributed)' : leaf.functionName;
  if (stack.some(isModuleLoading)) return 'startup: loading modules';
  if (isJson(leaf)) return 'JSON.parse / JSON.stringify';
  if (leaf.url.startsWith('node:internal/crypto') || stack.slice(0, 3).some((f) => f.url.startsWith('node:internal/crypto'))) return 'crypto (sha256)';
  for (const frame of stack) {
    const owner = libraryOf(frame.url) ?? projectOf(frame.url);
    if (owner) return owner.startsWith('ppos ') ? owner.replace(/^ppos (\w+)\/.*$/, 'ppos $1/ (own code)') : owner;
  }
  return 'node internals (unowned: timers, microtasks)';
}

const pct = (part: number, whole: number): string => `${((100 * part) / Math.max(1, whole)).toFixed(1)} %`;
const shortUrl = (url: string): string => url.replace(/^.*\/node_modules\//, '').replace(/^.*\/dist\//, '').replace(/^file:\/\//, '');

export function summariseProfile(profile: CpuProfile, commands: number): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const child of n.children ?? []) parent.set(child, n.id);
  const stackCache = new Map<number, Frame[]>();
  const stackOf = (id: number): Frame[] => {
    let stack = stackCache.get(id);
    if (!stack) {
      stack = [];
      for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
        const frame = byId.get(at)?.callFrame;
        if (frame && frame.functionName !== '(root)') stack.push(frame);
      }
      stackCache.set(id, stack);
    }
    return stack;
  };

  let total = 0;
  let idle = 0;
  const concerns = new Map<string, number>();
  const selfTime = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const writes = new Map<string, number>();
  const jsonOwners = new Map<string, number>();
  const add = (map: Map<string, number>, key: string, us: number): void => {
    map.set(key, (map.get(key) ?? 0) + us);
  };
  const keyOf = (f: Frame): string => `${f.functionName || '(anonymous)'} ${f.url ? `${shortUrl(f.url)}:${f.lineNumber + 1}` : '(native)'}`;

  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    const stack = stackOf(id);
    if (stack.length === 0) return;
    total += us;
    if (stack[0]!.functionName === '(idle)') {
      idle += us;
      return;
    }
    add(concerns, concernOf(stack), us);
    add(selfTime, keyOf(stack[0]!), us);
    const seen = new Set<string>();
    for (const frame of stack) {
      if (!projectOf(frame.url)) continue;
      const key = keyOf(frame);
      if (seen.has(key)) continue;
      seen.add(key);
      add(inclusive, key, us);
    }
    if (isNativeWrite(stack[0]!)) add(writes, concernOf(stack.slice(1)), us);
    if (isJson(stack[0]!)) {
      const owner = stack.slice(1).find((f) => libraryOf(f.url) ?? projectOf(f.url));
      add(jsonOwners, owner ? `${owner.functionName || '(anonymous)'} (${shortUrl(owner.url)})` : 'unknown', us);
    }
  });

  const busy = total - idle;
  const startup = concerns.get('startup: loading modules') ?? 0;
  const sorted = (map: Map<string, number>, n: number): [string, number][] => [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, n);
  const out: string[] = [];
  out.push(
    `Profile: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s not idle (${pct(busy, total)}), ${commands.toLocaleString('en-US')} commands handled: ` +
      `${Math.round((busy - startup) / Math.max(1, commands))} µs of main-thread wall time per command, start-up excluded.`,
  );
  out.push('');
  out.push('### Busy time by concern');
  out.push('');
  out.push('Each sample goes to the first library or ppos frame on its stack (socket writes count for whoever wrote); JSON, sha256 and GC are recognised at the leaf.');
  out.push('');
  out.push('| concern | share of busy | µs per command |');
  out.push('| --- | ---: | ---: |');
  for (const [name, us] of sorted(concerns, 30)) out.push(`| ${name} | ${pct(us, busy)} | ${(us / Math.max(1, commands)).toFixed(1)} |`);
  out.push('');
  if (writes.size > 0) {
    const all = [...writes.values()].reduce((a, b) => a + b, 0);
    out.push(
      `Native socket writes (writeBuffer/writev/writeUtf8String, i.e. the write syscalls and the loopback TCP work the kernel does inside them): ${pct(all, busy)} of busy, ` +
        sorted(writes, 5)
          .map(([owner, us]) => `${owner} ${pct(us, busy)}`)
          .join(', ') +
        '.',
    );
    out.push('');
  }
  if ([...jsonOwners.values()].reduce((a, b) => a + b, 0) > busy / 1000) {
    out.push(`JSON.parse/stringify by caller: ${sorted(jsonOwners, 8).map(([owner, us]) => `${owner} ${pct(us, busy)}`).join(', ')}.`);
    out.push('');
  }
  out.push(
    'V8 folds JSON.parse/JSON.stringify into the self time of their caller in this view: `appendTogether` (the batch as one jsonb parameter), ' +
      '`respond` (the reply), `onCommitted` (the event published on ppos.events), `parseEnvelope` (the request) are mostly JSON.',
  );
  out.push('');
  out.push('### Top functions by self time');
  out.push('');
  out.push('| function | self, share of busy |');
  out.push('| --- | ---: |');
  for (const [name, us] of sorted(selfTime, 30)) out.push(`| \`${name}\` | ${pct(us, busy)} |`);
  out.push('');
  out.push('### ppos functions by inclusive time');
  out.push('');
  out.push('| function | inclusive, share of busy |');
  out.push('| --- | ---: |');
  for (const [name, us] of sorted(inclusive, 25)) out.push(`| \`${name}\` | ${pct(us, busy)} |`);
  out.push('');
  return out.join('\n');
}

// `node dist/bench/cpuprofile.js <file.cpuprofile> <commands>`: the same summary for any profile.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [file, commands] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: node dist/bench/cpuprofile.js <file.cpuprofile> [commands handled]\n');
    process.exit(2);
  }
  process.stdout.write(`${summariseProfile(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, Number(commands ?? 0))}\n`);
}
