// The page: nodes, active actors, and the chosen actor (its address lives in the URL hash,
// `#/actor/<kind>/<id>`, so a view can be linked and survives a reload).
import { useEffect, useState } from 'preact/hooks';
import { getJson, type StateChart } from './api';
import { ActorView } from './actor-view';
import { ActorsTable, Nodes } from './cluster';
import { useLiveFeed } from './live';
import { Projections } from './projections';

interface Selection {
  readonly kind: string;
  readonly id: string;
}

function fromHash(): Selection | null {
  const match = /^#\/actor\/([^/]+)\/([^/]+)$/.exec(window.location.hash);
  return match ? { kind: decodeURIComponent(match[1]!), id: decodeURIComponent(match[2]!) } : null;
}

function OpenActor({ kinds, onOpen }: { kinds: readonly string[]; onOpen: (kind: string, id: string) => void }) {
  const [kind, setKind] = useState('');
  const [id, setId] = useState('');
  const chosenKind = kind || kinds[0] || '';
  return (
    <form
      class="open-actor"
      onSubmit={(e) => {
        e.preventDefault();
        if (id.trim()) onOpen(chosenKind, id.trim());
      }}
    >
      <select value={chosenKind} onChange={(e) => setKind((e.target as HTMLSelectElement).value)} data-testid="open-kind">
        {kinds.map((k) => (
          <option key={k} value={k}>
            {k}
          </option>
        ))}
      </select>
      <input placeholder="actor id (also passivated ones)" value={id} onInput={(e) => setId((e.target as HTMLInputElement).value)} data-testid="open-id" />
      <button type="submit">open</button>
    </form>
  );
}

export function App() {
  const feed = useLiveFeed();
  const [selection, setSelection] = useState<Selection | null>(fromHash);
  const [kinds, setKinds] = useState<readonly string[]>([]);

  useEffect(() => {
    const onHash = (): void => setSelection(fromHash());
    window.addEventListener('hashchange', onHash);
    getJson<{ kinds: Record<string, { chart: StateChart }> }>('api/kinds').then(
      (k) => setKinds(Object.keys(k.kinds)),
      () => undefined,
    );
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  const open = (kind: string, id: string): void => {
    window.location.hash = `#/actor/${encodeURIComponent(kind)}/${encodeURIComponent(id)}`;
  };
  const selectedKey = selection ? `${selection.kind}/${selection.id}` : null;

  return (
    <div class="page">
      <header class="top">
        <h1>ppos</h1>
        <span class={`badge ${feed.connected ? 'badge-ok' : 'badge-bad'}`} data-testid="connection">
          {feed.connected ? 'live' : 'disconnected'}
        </span>
        <span class="muted">{feed.cluster ? `listing at ${new Date(feed.cluster.at).toLocaleTimeString([], { hour12: false })}` : ''}</span>
        <OpenActor kinds={kinds} onOpen={open} />
      </header>
      <section>
        <h2>Nodes</h2>
        <Nodes cluster={feed.cluster} />
      </section>
      <section>
        <h2>Projections</h2>
        <Projections />
      </section>
      <div class="main">
        <section class="actors-pane">
          <h2>Active actors</h2>
          <ActorsTable cluster={feed.cluster} activity={feed.activity} latestSeq={feed.latestSeq} selected={selectedKey} onOpen={open} />
        </section>
        <section class="actor-pane">
          {selection ? (
            <ActorView key={selectedKey} kind={selection.kind} id={selection.id} feed={feed} />
          ) : (
            <p class="muted">Choose an actor on the left, or open one by id, to see its state chart, context and history.</p>
          )}
        </section>
      </div>
    </div>
  );
}
