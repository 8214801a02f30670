// An inventory actor's open reservations (actors/open-reservations.ts): a persistent B+ tree
// ordered by id. Checked against plain Maps: every state stays what it was when made, `total`
// is the sum of qty, pages follow code-unit order, the columnar form round-trips, and a change
// copies a path of nodes, not the collection (CONTRACT.md 4.8), without timing anything.
import { describe, expect, it } from 'vitest';
import { OpenReservations, type PersistedReservations, type Reservation } from '../../actors/open-reservations.js';
import { Random } from '../../src/random.js';

/** Code-unit order, as the contract orders reservation ids (what `<` does on strings). */
const byCodeUnit = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

const AWKWARD_IDS = [
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  'valueOf',
  'prototype',
  'r'.repeat(128),
  `${'r'.repeat(127)}s`,
  'R'.repeat(128),
  'abc',
  'Abc',
  'ABC',
  'aBc',
  'wo-1:0',
  'wo-1:10',
  'wo-1:2',
  ':',
  '-',
  '_',
  'a:b',
  'a-b',
  'a_b',
];

function build(entries: Iterable<[string, Reservation]>, from = OpenReservations.empty): OpenReservations {
  let tree = from;
  for (const [id, reservation] of entries) tree = tree.with(id, reservation);
  return tree;
}

/** A tree's content as a Map, to compare with a model. */
const asMap = (tree: OpenReservations): Map<string, Reservation> => new Map(tree.entries());

const sumOf = (model: ReadonlyMap<string, Reservation>): number => {
  let sum = 0;
  for (const reservation of model.values()) sum += reservation.qty;
  return sum;
};

/** Everything a tree says about itself, read only through its public surface. */
function observe(tree: OpenReservations): unknown {
  return { entries: [...tree.entries()], size: tree.size, total: tree.total, persisted: tree.persist() };
}

function randomReservation(random: Random): Reservation {
  const qty = random.int(1, 1_000);
  return random.chance(0.3) ? { qty, workOrderId: `wo-${random.int(0, 5)}` } : { qty };
}

/** One random `with` (new id or overwrite) or `without` (present or absent id), applied to both the tree and the model. */
function randomOperation(random: Random, tree: OpenReservations, model: Map<string, Reservation>, pool: readonly string[]): OpenReservations {
  const id = random.pick(pool);
  if (random.chance(0.55)) {
    const reservation = randomReservation(random);
    model.set(id, reservation);
    return tree.with(id, reservation);
  }
  model.delete(id);
  return tree.without(id);
}

const idPool = (random: Random, count: number): string[] => [
  ...AWKWARD_IDS,
  ...Array.from({ length: count }, (_, i) => `${random.pick(['r', 'R', 'wo-', '_', ':'])}${i}${random.pick(['', 'a', 'Z', ':0'])}`),
];

/** The tree's nodes, read from sorted-btree 2.1's internals (`_root`, `children`): to see what two states share. */
interface TreeNode {
  readonly keys: unknown[];
  readonly children?: TreeNode[];
}
function nodesOf(tree: OpenReservations): { nodes: Set<TreeNode>; depth: number } {
  const root = (tree as unknown as { tree: { _root: TreeNode } }).tree._root;
  expect(root, 'sorted-btree internals changed: update nodesOf').toBeDefined();
  const nodes = new Set<TreeNode>();
  let depth = 0;
  const walk = (node: TreeNode, level: number): void => {
    nodes.add(node);
    depth = Math.max(depth, level);
    for (const child of node.children ?? []) walk(child, level + 1);
  };
  walk(root, 1);
  return { nodes, depth };
}

/** How many of `after`'s nodes `before` does not have: what deriving `after` copied. */
function copiedNodes(before: OpenReservations, after: OpenReservations): { copied: number; depth: number } {
  const shared = nodesOf(before).nodes;
  const { nodes, depth } = nodesOf(after);
  let copied = 0;
  for (const node of nodes) if (!shared.has(node)) copied += 1;
  return { copied, depth };
}

describe('OpenReservations is immutable', () => {
  const base = (): OpenReservations =>
    build([
      ['r1', { qty: 4 }],
      ['wo-1:0', { qty: 3, workOrderId: 'wo-1' }],
      ['__proto__', { qty: 2 }],
    ]);

  it('with adds to a new state and leaves the original as it was', () => {
    const original = base();
    const before = observe(original);
    const added = original.with('r2', { qty: 5 });
    expect(added).not.toBe(original);
    expect(observe(original)).toEqual(before);
    expect(original.has('r2')).toBe(false);
    expect(added.get('r2')).toEqual({ qty: 5 });
    expect(added.size).toBe(4);
    expect(added.total).toBe(14);
  });

  it('with over an open id replaces it in a new state, adjusting total, and leaves the original as it was', () => {
    const original = base();
    const before = observe(original);
    const replaced = original.with('r1', { qty: 10, workOrderId: 'wo-2' });
    expect(observe(original)).toEqual(before);
    expect(original.get('r1')).toEqual({ qty: 4 });
    expect(replaced.get('r1')).toEqual({ qty: 10, workOrderId: 'wo-2' });
    expect(replaced.size).toBe(3);
    expect(replaced.total).toBe(15);
  });

  it('without removes from a new state and leaves the original as it was; without of an absent id is the same state', () => {
    const original = base();
    const before = observe(original);
    const removed = original.without('__proto__');
    expect(observe(original)).toEqual(before);
    expect(original.get('__proto__')).toEqual({ qty: 2 });
    expect(removed.has('__proto__')).toBe(false);
    expect(removed.size).toBe(2);
    expect(removed.total).toBe(7);
    expect(original.without('never-made')).toBe(original);
    expect(original.without('constructor')).toBe(original);
  });

  it('empty stays empty however much is built on it', () => {
    build(AWKWARD_IDS.map((id, i) => [id, { qty: i + 1 }]));
    expect(observe(OpenReservations.empty)).toEqual({ entries: [], size: 0, total: 0, persisted: { ids: [], qty: [], workOrderId: [] } });
  });

  it('a state is frozen: changing its tree in place throws and changes nothing, yet with/without still derive new states', () => {
    for (const original of [base(), OpenReservations.restore(base().persist())]) {
      const before = observe(original);
      const inner = (original as unknown as { tree: { set(k: string, v: Reservation): void; delete(k: string): void; clear(): void } }).tree;
      expect(() => inner.set('r9', { qty: 1 })).toThrow(/frozen/);
      expect(() => inner.delete('r1')).toThrow(/frozen/);
      expect(() => inner.clear()).toThrow(/frozen/);
      expect(observe(original)).toEqual(before);
      const derived = original.with('r9', { qty: 1 }).without('r1');
      const expected = new Map(asMap(original)).set('r9', { qty: 1 });
      expected.delete('r1');
      expect(asMap(derived)).toEqual(expected);
      expect(observe(original)).toEqual(before);
    }
  });

  it.each([1, 2, 3, 42, 0xdeadbeef])('seed %i: every state kept along 3000 random operations still holds exactly what it held when made', (seed) => {
    const random = new Random(seed);
    const pool = idPool(random, 150);
    const model = new Map<string, Reservation>();
    let tree = OpenReservations.empty;
    const kept: [OpenReservations, Map<string, Reservation>][] = [];
    for (let i = 0; i < 3_000; i += 1) {
      tree = randomOperation(random, tree, model, pool);
      if (i % 50 === 0) kept.push([tree, new Map(model)]);
    }
    // Also derive from old states, so copy-on-write is exercised on nodes shared several ways.
    for (const [old] of kept.slice(0, 10)) build(pool.slice(0, 40).map((id) => [id, { qty: 1 }]), old).without(pool[3]!);
    for (const [state, then] of kept) {
      expect(asMap(state)).toEqual(then);
      expect(state.size).toBe(then.size);
      expect(state.total).toBe(sumOf(then));
    }
  });
});

describe('OpenReservations draft (replay folds many events in place)', () => {
  it.each([7, 99, 0xc0ffee])('seed %i: a draft ends where the persistent path ends, and the state it came from, and states derived from that, never change', (seed) => {
    const random = new Random(seed);
    const pool = idPool(random, 400);
    const model = new Map<string, Reservation>();
    let original = OpenReservations.empty;
    for (let i = 0; i < 600; i += 1) original = randomOperation(random, original, model, pool);
    const before = observe(original);
    const sibling = original.with('sibling', { qty: 1 });
    const siblingBefore = observe(sibling);
    const persistentModel = new Map(model);
    const operations = Array.from({ length: 2_000 }, () => ({ id: random.pick(pool), qty: random.chance(0.55) ? random.int(1, 9) : 0 }));
    let persistent = original;
    let draft = original.draft();
    for (const { id, qty } of operations) {
      persistent = qty > 0 ? persistent.with(id, { qty }) : persistent.without(id);
      const next = qty > 0 ? draft.with(id, { qty }) : draft.without(id);
      expect(next).toBe(draft); // in place: no copy per change
      if (qty > 0) persistentModel.set(id, { qty });
      else persistentModel.delete(id);
    }
    const sealed = draft.seal();
    expect(observe(sealed)).toEqual(observe(persistent));
    expect(asMap(sealed)).toEqual(persistentModel);
    expect(sealed.total).toBe(sumOf(persistentModel));
    expect(observe(original)).toEqual(before);
    expect(observe(sibling)).toEqual(siblingBefore);
    // Sealed, it is a state like any other: frozen in place, changed only by deriving.
    const inner = (sealed as unknown as { tree: { set(k: string, v: Reservation): void } }).tree;
    expect(() => inner.set('x', { qty: 1 })).toThrow(/frozen/);
    expect(sealed.with('after-seal', { qty: 2 })).not.toBe(sealed);
    expect(observe(sealed)).toEqual(observe(persistent));
  });
});

describe('OpenReservations total', () => {
  it.each([1, 2, 3, 42, 1337, 20240601, 0xdeadbeef])('seed %i: total is the sum of qty, size the count, entries the model, after every one of 3000 random operations', (seed) => {
    const random = new Random(seed);
    const pool = idPool(random, 120);
    const model = new Map<string, Reservation>();
    let tree = OpenReservations.empty;
    for (let i = 0; i < 3_000; i += 1) {
      tree = randomOperation(random, tree, model, pool);
      if (tree.total !== sumOf(model) || tree.size !== model.size) {
        expect.fail(`seed ${seed}, step ${i}: total ${tree.total} size ${tree.size}, model sums to ${sumOf(model)} over ${model.size}`);
      }
      for (const id of [pool[i % pool.length]!, '__proto__', 'constructor']) {
        if (tree.has(id) !== model.has(id) || tree.get(id) !== model.get(id)) expect.fail(`seed ${seed}, step ${i}: ${id} is ${JSON.stringify(tree.get(id))}, model ${JSON.stringify(model.get(id))}`);
      }
    }
    expect([...tree.entries()]).toEqual([...model].sort(([a], [b]) => byCodeUnit(a, b)));
  });
});

describe('OpenReservations page', () => {
  const ids = [...AWKWARD_IDS, 'r1', 'r2', 'r10', 'R1', 'z', 'Z', 'wo-2:0'];
  const sorted = [...ids].sort(byCodeUnit);
  const tree = build(ids.map((id, i) => [id, { qty: i + 1 }]));

  it('knows the code-unit order it must follow', () => {
    // Upper case before '_' before lower case; ':' and '-' and digits before letters.
    expect(sorted.indexOf('ABC')).toBeLessThan(sorted.indexOf('__proto__'));
    expect(sorted.indexOf('__proto__')).toBeLessThan(sorted.indexOf('abc'));
    expect(sorted.indexOf('r1')).toBeLessThan(sorted.indexOf('r10'));
    expect(sorted.indexOf('r10')).toBeLessThan(sorted.indexOf('r2'));
    expect(sorted.indexOf('wo-1:10')).toBeLessThan(sorted.indexOf('wo-1:2'));
  });

  it.each([1, 2, 3, 5, 7, ids.length - 1, ids.length, ids.length + 1, 1000])('pages of %i walk every id once, in code-unit order, each with the next page\'s `after`', (limit) => {
    const seen: string[] = [];
    let after: string | undefined;
    for (let pages = 0; ; pages += 1) {
      expect(pages, 'paging does not end').toBeLessThan(ids.length + 2);
      const page = tree.page(after, limit);
      expect(Array.isArray(page.reservations)).toBe(true);
      const keys = page.reservations.map((listed) => listed.id);
      const remaining = sorted.length - seen.length;
      expect(keys).toEqual(sorted.slice(seen.length, seen.length + limit));
      // Each entry is the reservation held under its id, with that id, and nothing more (no undefined workOrderId).
      for (const listed of page.reservations) {
        expect(tree.get(listed.id), listed.id).toBeDefined();
        expect(listed, listed.id).toStrictEqual({ id: listed.id, ...tree.get(listed.id)! });
      }
      seen.push(...keys);
      if (remaining > limit) {
        expect(page.next).toBe(keys.at(-1));
        after = page.next;
      } else {
        // The last page, exactly full or not, says there is nothing after it.
        expect(page).not.toHaveProperty('next');
        break;
      }
    }
    expect(seen).toEqual(sorted);
  });

  /** What a page must hold, from the sorted list alone. */
  function expectedPage(after: string | undefined, limit: number): { keys: string[]; next: string | undefined } {
    const rest = sorted.filter((id) => after === undefined || id > after);
    const keys = rest.slice(0, limit);
    return { keys, next: rest.length > limit ? keys.at(-1) : undefined };
  }

  it.each(['', ',', '0', 'ABD', 'Abd', 'ZZ', '[', '__proto_', '__proto__a', 'r0', 'r1a', 'wo-1:1', 'wo-3', 'zz', '~'])(
    'an `after` that is not an id (%j) starts at the next id in code-unit order',
    (after) => {
      expect(tree.has(after)).toBe(false);
      for (const limit of [1, 2, 4, 1000]) {
        const page = tree.page(after, limit);
        const expected = expectedPage(after, limit);
        expect(page.reservations.map((listed) => listed.id), `after ${after}, limit ${limit}`).toEqual(expected.keys);
        expect(page.next, `after ${after}, limit ${limit}`).toBe(expected.next);
      }
    },
  );

  it('after every id there is an empty last page', () => {
    expect(tree.page('zz', 10)).toStrictEqual({ reservations: [] });
    expect(tree.page(sorted.at(-1), 10)).toStrictEqual({ reservations: [] });
  });

  it('an `after` that is an id starts just past it', () => {
    for (let i = 0; i < sorted.length; i += 1) {
      const page = tree.page(sorted[i], 2);
      expect(page.reservations.map((listed) => listed.id), `after ${sorted[i]}`).toEqual(sorted.slice(i + 1, i + 3));
      expect(page.next, `after ${sorted[i]}`).toBe(i + 3 < sorted.length ? sorted[i + 2] : undefined);
    }
  });

  it('a page of an empty collection is empty, with no next', () => {
    expect(OpenReservations.empty.page(undefined, 100)).toStrictEqual({ reservations: [] });
    expect(OpenReservations.empty.page('r1', 1)).toStrictEqual({ reservations: [] });
  });

  it('lists "__proto__" and "constructor" as ordinary entries, each a plain object with own keys, and leaves Object.prototype alone', () => {
    const page = tree.page(undefined, 1000);
    expect(Array.isArray(page.reservations)).toBe(true);
    expect(page.reservations).toHaveLength(ids.length);
    for (const listed of page.reservations) {
      expect(Object.getPrototypeOf(listed), listed.id).toBe(Object.prototype);
      expect(Object.hasOwn(listed, 'id'), listed.id).toBe(true);
      expect(Object.hasOwn(listed, 'qty'), listed.id).toBe(true);
    }
    for (const id of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'prototype']) {
      const listed = page.reservations.filter((entry) => entry.id === id);
      expect(listed, id).toHaveLength(1);
      expect(listed[0], id).toStrictEqual({ id, ...tree.get(id)! });
    }
    const json = JSON.parse(JSON.stringify(page.reservations)) as { id: string }[];
    expect(json.map((listed) => listed.id)).toEqual(sorted);
    expect(json.filter((listed) => listed.id === '__proto__')).toEqual([{ id: '__proto__', ...tree.get('__proto__')! }]);
    expect(Object.prototype).not.toHaveProperty('qty');
    expect(Object.prototype).not.toHaveProperty('id');
  });

  // Contract section 5: a page is "ordered by id". Ids such as "9" and "10" are array indexes,
  // which a JavaScript object (and so a JSON reply keyed by id) would list first and in numeric order.
  it('keeps code-unit order in the page, and in its JSON, for ids that look like array indexes ("0", "10", "9")', () => {
    const numeric = build(['9', '10', '0', 'A', '1:0'].map((id) => [id, { qty: 1 }]));
    const page = numeric.page(undefined, 10);
    expect([...numeric.entries()].map(([id]) => id)).toEqual(['0', '10', '1:0', '9', 'A']);
    expect(page.reservations.map((listed) => listed.id)).toEqual(['0', '10', '1:0', '9', 'A']);
    const json = JSON.parse(JSON.stringify(page)) as { reservations: { id: string }[] };
    expect(json.reservations.map((listed) => listed.id)).toEqual(['0', '10', '1:0', '9', 'A']);
    expect(numeric.page(undefined, 2)).toStrictEqual({ reservations: [{ id: '0', qty: 1 }, { id: '10', qty: 1 }], next: '10' });
    expect(numeric.page('10', 2)).toStrictEqual({ reservations: [{ id: '1:0', qty: 1 }, { id: '9', qty: 1 }], next: '9' });
    expect(numeric.page('9', 2)).toStrictEqual({ reservations: [{ id: 'A', qty: 1 }] });
  });
});

describe('OpenReservations persist and restore', () => {
  const awkward = (): OpenReservations =>
    build(
      [...AWKWARD_IDS, 'r1', 'R1'].map((id, i): [string, Reservation] => [id, i % 3 === 0 ? { qty: i + 1, workOrderId: i % 2 === 0 ? 'constructor' : '__proto__' } : { qty: i + 1 }]),
    );

  it('persists three columns in code-unit order, null where there is no work order', () => {
    const tree = build([
      ['b', { qty: 2, workOrderId: 'wo-1' }],
      ['B', { qty: 3 }],
      ['a', { qty: 1 }],
    ]);
    expect(tree.persist()).toEqual({ ids: ['B', 'a', 'b'], qty: [3, 1, 2], workOrderId: [null, null, 'wo-1'] });
  });

  it('restore of persist, through JSON text, equals the original: prototype names, 128-character ids, ids differing by case', () => {
    const original = awkward();
    const restored = OpenReservations.restore(JSON.parse(JSON.stringify(original.persist())) as PersistedReservations);
    // toStrictEqual: a reservation without a work order comes back without the key, not with undefined.
    expect([...restored.entries()]).toStrictEqual([...original.entries()]);
    expect(restored.size).toBe(original.size);
    expect(restored.total).toBe(original.total);
    expect(restored.persist()).toEqual(original.persist());
    // toStrictEqual: ids such as "constructor" are values of `id`, not keys, so its type check is sound.
    expect(restored.page(undefined, 1000)).toStrictEqual(original.page(undefined, 1000));
    expect(JSON.stringify(restored.page(undefined, 1000))).toBe(JSON.stringify(original.page(undefined, 1000)));
    for (const id of ['__proto__', 'constructor', 'r'.repeat(128), 'R'.repeat(128), `${'r'.repeat(127)}s`, 'abc', 'Abc', 'ABC', 'aBc', 'r1', 'R1']) {
      expect(restored.get(id), id).toStrictEqual(original.get(id));
      expect(restored.get(id), id).toBeDefined();
    }
    expect(restored.has('ABc')).toBe(false);
  });

  it('a restored collection keeps working like the original', () => {
    const original = awkward();
    const restored = OpenReservations.restore(original.persist());
    const change = (tree: OpenReservations) => tree.without('constructor').with('aBC', { qty: 9 }).with('__proto__', { qty: 1 });
    expect(change(restored).persist()).toEqual(change(original).persist());
    expect(change(restored).total).toBe(change(original).total);
  });

  it('restores the empty collection and a large one (bulk load)', () => {
    expect(observe(OpenReservations.restore({ ids: [], qty: [], workOrderId: [] }))).toEqual(observe(OpenReservations.empty));
    const ids = Array.from({ length: 20_000 }, (_, i) => `r${String(i).padStart(6, '0')}`);
    const restored = OpenReservations.restore({ ids, qty: ids.map((_, i) => (i % 7) + 1), workOrderId: ids.map((_, i) => (i % 2 ? 'wo-1' : null)) });
    expect(restored.size).toBe(20_000);
    expect(restored.total).toBe(ids.reduce((sum, _, i) => sum + (i % 7) + 1, 0));
    expect(restored.get('r012345')).toStrictEqual({ qty: (12_345 % 7) + 1, workOrderId: 'wo-1' });
    expect(restored.page('r019998', 5)).toStrictEqual({ reservations: [{ id: 'r019999', qty: (19_999 % 7) + 1, workOrderId: 'wo-1' }] });
  });

  it.each<[string, PersistedReservations]>([
    ['ids out of order', { ids: ['b', 'a'], qty: [1, 1], workOrderId: [null, null] }],
    ['ids out of code-unit order ("a" before "B")', { ids: ['a', 'B'], qty: [1, 1], workOrderId: [null, null] }],
    ['a duplicate id', { ids: ['a', 'b', 'b'], qty: [1, 1, 1], workOrderId: [null, null, null] }],
    ['a duplicate "__proto__"', { ids: ['__proto__', '__proto__'], qty: [1, 2], workOrderId: [null, null] }],
    ['fewer qty than ids', { ids: ['a', 'b'], qty: [1], workOrderId: [null, null] }],
    ['more qty than ids', { ids: ['a'], qty: [1, 2], workOrderId: [null] }],
    ['fewer workOrderId than ids', { ids: ['a', 'b'], qty: [1, 1], workOrderId: [null] }],
    ['more workOrderId than ids', { ids: ['a'], qty: [1], workOrderId: [null, 'wo-1'] }],
  ])('restore refuses %s', (_what, persisted) => {
    expect(() => OpenReservations.restore(persisted)).toThrow();
  });

  it('restore does not change the arrays it was given', () => {
    const persisted = { ids: ['a', 'b'], qty: [1, 2], workOrderId: [null, 'wo-1'] };
    const copy = structuredClone(persisted);
    OpenReservations.restore(persisted).with('c', { qty: 3 }).without('a');
    expect(persisted).toEqual(copy);
  });
});

describe('OpenReservations changesSince', () => {
  type Change = [string, Reservation | undefined, Reservation | undefined];

  /** The reference: every id of both Maps, compared by the value each holds (the very object `with` was given). */
  function naiveDiff(before: ReadonlyMap<string, Reservation>, after: ReadonlyMap<string, Reservation>): Change[] {
    const changes: Change[] = [];
    for (const id of new Set([...before.keys(), ...after.keys()])) {
      if (before.get(id) !== after.get(id)) changes.push([id, before.get(id), after.get(id)]);
    }
    return changes.sort(([a], [b]) => byCodeUnit(a, b));
  }

  it('names an added, a removed and a changed reservation, in id order, as [id, before, after]', () => {
    const before = build([
      ['b', { qty: 1 }],
      ['c', { qty: 2 }],
      ['d', { qty: 3 }],
    ]);
    const changedTo = { qty: 5, workOrderId: 'wo-1' };
    const after = before.without('b').with('a', { qty: 4 }).with('d', changedTo);
    expect(after.changesSince(before)).toEqual([
      ['a', undefined, { qty: 4 }],
      ['b', { qty: 1 }, undefined],
      ['d', { qty: 3 }, changedTo],
    ]);
    // The other way round, the same ids with before and after swapped.
    expect(before.changesSince(after)).toEqual([
      ['a', { qty: 4 }, undefined],
      ['b', undefined, { qty: 1 }],
      ['d', changedTo, { qty: 3 }],
    ]);
    expect(after.changesSince(after)).toEqual([]);
  });

  it('a reservation removed and added back as the same value is no change', () => {
    const kept = { qty: 2 };
    const before = build([['a', kept], ['__proto__', { qty: 1 }]]);
    expect(before.without('a').with('a', kept).changesSince(before)).toEqual([]);
  });

  it.each([1, 2, 3, 42, 1337, 0xdeadbeef])('seed %i: lists exactly what a naive Map diff lists, between a state and states derived from it', (seed) => {
    const random = new Random(seed);
    const pool = idPool(random, 400);
    const model = new Map<string, Reservation>();
    // A base big enough for several levels of nodes.
    let base = OpenReservations.empty;
    for (let i = 0; i < 2_000; i += 1) base = randomOperation(random, base, model, pool);
    const baseModel = new Map(model);
    for (const operations of [0, 1, 2, 5, 20, 100, 500]) {
      const derivedModel = new Map(baseModel);
      let derived = base;
      let previous = base;
      let previousModel = new Map(baseModel);
      for (let i = 0; i < operations; i += 1) {
        previous = derived;
        previousModel = new Map(derivedModel);
        derived = randomOperation(random, derived, derivedModel, pool);
      }
      expect(derived.changesSince(base), `${operations} operations`).toEqual(naiveDiff(baseModel, derivedModel));
      expect(base.changesSince(derived), `${operations} operations, reversed`).toEqual(naiveDiff(derivedModel, baseModel));
      expect(derived.changesSince(previous), `the last of ${operations} operations`).toEqual(naiveDiff(previousModel, derivedModel));
    }
  });

  it('between two unrelated trees with the same ids it still lists exactly the differing values', () => {
    const random = new Random(5);
    const pool = idPool(random, 300);
    const left = new Map<string, Reservation>();
    const right = new Map<string, Reservation>();
    let a = OpenReservations.empty;
    let b = OpenReservations.empty;
    for (let i = 0; i < 1_000; i += 1) a = randomOperation(random, a, left, pool);
    for (let i = 0; i < 1_000; i += 1) b = randomOperation(random, b, right, pool);
    expect(b.changesSince(a)).toEqual(naiveDiff(left, right));
  });
});

describe('OpenReservations cost does not grow with size (structure, not time)', () => {
  const N = 100_000;
  const idOf = (i: number): string => `r${String(i).padStart(7, '0')}`;
  let big: OpenReservations | undefined;
  /** One tree built by 100k `with`, each on the state before. */
  const bigTree = (): OpenReservations => {
    if (!big) {
      let tree = OpenReservations.empty;
      for (let i = 0; i < N; i += 1) tree = tree.with(idOf(i * 2), { qty: (i % 9) + 1 });
      big = tree;
    }
    return big;
  };

  it('100k `with` give the expected tree', () => {
    const tree = bigTree();
    expect(tree.size).toBe(N);
    let total = 0;
    for (let i = 0; i < N; i += 1) total += (i % 9) + 1;
    expect(tree.total).toBe(total);
    expect(tree.page(idOf(2 * 777), 2)).toStrictEqual({
      reservations: [
        { id: idOf(2 * 778), qty: (778 % 9) + 1 },
        { id: idOf(2 * 779), qty: (779 % 9) + 1 },
      ],
      next: idOf(2 * 779),
    });
  });

  it('each state derived by one more `with` copies only a path of nodes, and changesSince finds exactly that one change', () => {
    const random = new Random(99);
    let state = bigTree();
    const before = observe(state);
    const { nodes, depth } = nodesOf(state);
    expect(nodes.size).toBeGreaterThan(1_000); // many nodes, so that sharing them means something
    for (let i = 0; i < 300; i += 1) {
      const id = idOf(2 * random.int(0, N) + 1); // odd: never in the tree yet, anywhere in it
      const reservation = { qty: 1 };
      const next = state.with(id, reservation);
      expect(next.changesSince(state)).toEqual([[id, undefined, reservation]]);
      if (i % 30 === 0) {
        // One node per level, plus the few a split adds: never a copy of the collection.
        expect(copiedNodes(state, next).copied).toBeLessThanOrEqual(2 * depth + 1);
      }
      state = next;
    }
    expect(observe(bigTree())).toEqual(before);
  });

  it('10k alternating without/with on a 100k tree complete, each step one change and a path of copied nodes', () => {
    const random = new Random(7);
    const base = bigTree();
    const { depth } = nodesOf(base);
    let state = base;
    const removed: [string, Reservation][] = [];
    for (let i = 0; i < 10_000; i += 1) {
      let next: OpenReservations;
      if (i % 2 === 0) {
        const id = idOf(2 * random.int(0, N - 1));
        const reservation = state.get(id);
        next = state.without(id);
        if (reservation) {
          removed.push([id, reservation]);
          if (next.changesSince(state).length !== 1) expect.fail(`step ${i}: without ${id} is not one change`);
        } else {
          expect(next).toBe(state);
        }
      } else {
        const back = removed.pop();
        next = back ? state.with(back[0], back[1]) : state;
        if (back && next.changesSince(state).length !== 1) expect.fail(`step ${i}: with ${back[0]} is not one change`);
      }
      if (i % 1_000 === 1) expect(copiedNodes(state, next).copied).toBeLessThanOrEqual(2 * depth + 1);
      state = next;
    }
    for (const [id, reservation] of removed) state = state.with(id, reservation);
    // Everything was put back as it was: same content as the base, and the base itself untouched.
    expect(state.changesSince(base)).toEqual([]);
    expect(state.size).toBe(N);
    expect(state.total).toBe(base.total);
  });
});
