// The nodes and their active actors, as the latest listing and the live feed show them.
import { useMemo, useState } from 'preact/hooks';
import { shortNode, type ActiveActor, type ClusterView } from './api';

const ms = (v: number | null | undefined): string => (v === null || v === undefined ? '–' : v.toFixed(v < 10 ? 2 : 1));

function duration(seconds: number): string {
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
}

export function Nodes({ cluster }: { cluster: ClusterView | null }) {
  if (!cluster) return <p class="muted">waiting for the first listing…</p>;
  if (cluster.nodes.length === 0) return <p class="muted">no node answered (start one with <code>ppos start</code>)</p>;
  return (
    <table class="grid" data-testid="nodes">
      <thead>
        <tr>
          <th>node</th>
          <th>uptime</th>
          <th class="num">commands</th>
          <th class="num">cmd/s</th>
          <th class="num">p50 ms</th>
          <th class="num">p99 ms</th>
          <th class="num">append p50</th>
          <th class="num">append p99</th>
          <th class="num">active</th>
          <th class="num">mailbox</th>
          <th class="num">activations</th>
          <th class="num">passivations</th>
          <th class="num">snapshots</th>
        </tr>
      </thead>
      <tbody>
        {cluster.nodes.map((n) => (
          <tr key={n.node} data-testid="node-row">
            <td class="mono">{n.node}</td>
            <td>{duration(n.uptimeSeconds)}</td>
            <td class="num">{n.commands}</td>
            <td class="num">{n.commandsPerSecond}</td>
            <td class="num">{ms(n.latencyMs?.p50)}</td>
            <td class="num">{ms(n.latencyMs?.p99)}</td>
            <td class="num">{ms(n.appendLatencyMs?.p50)}</td>
            <td class="num">{ms(n.appendLatencyMs?.p99)}</td>
            <td class="num">{n.activeActors}</td>
            <td class="num">{n.mailboxDepth}</td>
            <td class="num">{n.activations}</td>
            <td class="num">{n.passivations}</td>
            <td class="num">{n.snapshotsSaved}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

type SortKey = 'mailbox' | 'activity' | 'messages' | 'seq' | 'recent' | 'id';

interface Row extends ActiveActor {
  readonly key: string;
  readonly perMinute: number;
}

const comparators: Record<SortKey, (a: Row, b: Row) => number> = {
  mailbox: (a, b) => b.mailboxDepth - a.mailboxDepth || b.perMinute - a.perMinute,
  activity: (a, b) => b.perMinute - a.perMinute || b.lastUsedAt.localeCompare(a.lastUsedAt),
  messages: (a, b) => b.messages - a.messages,
  seq: (a, b) => b.seq - a.seq,
  recent: (a, b) => b.lastUsedAt.localeCompare(a.lastUsedAt),
  id: (a, b) => a.key.localeCompare(b.key),
};

export function ActorsTable(props: {
  cluster: ClusterView | null;
  activity: ReadonlyMap<string, readonly number[]>;
  latestSeq: ReadonlyMap<string, number>;
  selected: string | null;
  onOpen: (kind: string, id: string) => void;
}) {
  const [sort, setSort] = useState<SortKey>('mailbox');
  const [filter, setFilter] = useState('');
  const rows = useMemo(() => {
    const all: Row[] = (props.cluster?.actors ?? []).map((a) => {
      const key = `${a.kind}/${a.id}`;
      return { ...a, key, seq: Math.max(a.seq, props.latestSeq.get(key) ?? 0), perMinute: props.activity.get(key)?.length ?? 0 };
    });
    const needle = filter.trim().toLowerCase();
    return all.filter((r) => !needle || r.key.toLowerCase().includes(needle)).sort(comparators[sort]);
  }, [props.cluster, props.activity, props.latestSeq, sort, filter]);
  // One node: its name is in the nodes table already; the column only costs width.
  const multiNode = (props.cluster?.nodes.length ?? 0) > 1;
  const total = Object.values(props.cluster?.totals ?? {}).reduce<number>((sum, n) => sum + (n ?? 0), 0);
  const header = (key: SortKey, label: string, numeric = true) => (
    <th class={`${numeric ? 'num ' : ''}sortable${sort === key ? ' sorted' : ''}`} onClick={() => setSort(key)} data-testid={`sort-${key}`} title={`sort by ${label}`}>
      {label}
      {sort === key ? (key === 'id' ? ' ▲' : ' ▼') : ''}
    </th>
  );
  return (
    <div>
      <div class="toolbar">
        <input
          type="search"
          placeholder="filter kind/id"
          value={filter}
          onInput={(e) => setFilter((e.target as HTMLInputElement).value)}
          data-testid="actor-filter"
        />
        <span class="muted">
          {rows.length} shown{total > rows.length ? ` of ${total} active` : ''}
        </span>
      </div>
      <div class="scroll">
        <table class="grid" data-testid="actors">
          <thead>
            <tr>
              {header('id', 'actor', false)}
              {multiNode && <th>node</th>}
              {header('seq', 'seq')}
              {header('mailbox', 'mailbox')}
              {header('activity', 'ev/min')}
              {header('messages', 'msgs')}
              {header('recent', 'last used', false)}
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr
                key={r.key}
                class={`clickable${props.selected === r.key ? ' selected' : ''}`}
                onClick={() => props.onOpen(r.kind, r.id)}
                data-testid="actor-row"
                data-actor={r.key}
                data-seq={r.seq}
              >
                <td class="mono">
                  <span class={`kind kind-${r.kind}`}>{r.kind}</span> {r.id}
                </td>
                {multiNode && (
                  <td class="mono muted" title={r.node}>
                    {shortNode(r.node)}
                  </td>
                )}
                <td class="num">{r.seq}</td>
                <td class={`num${r.mailboxDepth > 0 ? ' warn' : ''}`}>{r.mailboxDepth}</td>
                <td class="num">{r.perMinute}</td>
                <td class="num">{r.messages}</td>
                <td class="muted">{new Date(r.lastUsedAt).toLocaleTimeString([], { hour12: false })}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}
