// Canonical JSON: object keys sorted, no whitespace, `undefined` members left out, so equal
// values give equal text whatever order their keys were built or stored in (jsonb reorders
// them). What state hashes are taken of. Arrays of plain values, the bulk of a large state,
// go through JSON.stringify in one call: a general stable stringify took 115 ms for an actor
// with 100k open reservations, this takes a fraction of that.

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) {
    if (value.every((item) => item === null || typeof item !== 'object')) return JSON.stringify(value);
    return `[${value.map((item) => (item === undefined ? 'null' : canonicalJson(item))).join(',')}]`;
  }
  const record = value as Record<string, unknown>;
  const members: string[] = [];
  for (const key of Object.keys(record).sort()) {
    const member = record[key];
    if (member === undefined || typeof member === 'function') continue;
    members.push(`${JSON.stringify(key)}:${canonicalJson(member)}`);
  }
  return `{${members.join(',')}}`;
}
