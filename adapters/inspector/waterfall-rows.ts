/** A state entered, as the waterfall needs it: a trace entry and its event in a few words. */
export interface WaterfallEntry {
  at: number;
  machine: string;
  state: string;
  summary?: string;
}

/** What the waterfall knows of a state: the machine it runs, its bound, whether it ends its machine. */
export interface WaterfallState {
  invokes?: string;
  boundMs?: number;
  final?: boolean;
}

/** One bar: a stay in a state, from `start` to `end` (ms since the run began), `depth` under the root machine. */
export interface WaterfallRow {
  state: string;
  machine: string;
  depth: number;
  start: number;
  end: number;
  /** Still the active state: `end` is `now`. */
  open: boolean;
  final: boolean;
  boundMs?: number;
  summary: string;
}

/**
 * The waterfall of a run: one row per stay in a state, each child machine's rows right under the
 * state that invoked it. A state's row ends when its machine enters the next one, or when the state
 * that invoked its machine is left; a final state's row is the instant it was reached. Rows still
 * open end at `now` (the last entry's time when it is undefined).
 *
 * Self-contained on purpose (no import, no helper outside it): the inspector page runs this very
 * function, from its source text, so the page and its tests agree.
 */
export function waterfallRows(entries: readonly WaterfallEntry[], states: Readonly<Record<string, WaterfallState>>, now?: number): WaterfallRow[] {
  interface Building extends WaterfallRow {
    parent: Building | undefined;
    children: Building[];
  }
  const last = entries.length > 0 ? (entries[entries.length - 1] as WaterfallEntry).at : 0;
  const until = now === undefined ? last : Math.max(now, last);
  const top: Building[] = [];
  const openOf = new Map<string, Building>();
  const close = (row: Building, at: number): void => {
    if (row.open) {
      row.open = false;
      row.end = Math.max(row.start, at);
    }
    if (openOf.get(row.machine) === row) openOf.delete(row.machine);
    for (const child of row.children) if (child.open || openOf.get(child.machine) === child) close(child, at);
  };
  for (const entry of entries) {
    const previous = openOf.get(entry.machine);
    let parent: Building | undefined;
    if (previous) {
      parent = previous.parent;
      close(previous, entry.at);
    } else {
      // A machine's first state: under the open row of the state that invokes it.
      for (const row of openOf.values()) if (row.open && states[row.state]?.invokes === entry.machine) parent = row;
    }
    const state = states[entry.state] ?? {};
    const row: Building = {
      state: entry.state,
      machine: entry.machine,
      depth: parent ? parent.depth + 1 : 0,
      start: entry.at,
      end: entry.at,
      open: !state.final,
      final: Boolean(state.final),
      ...(state.boundMs !== undefined ? { boundMs: state.boundMs } : {}),
      summary: entry.summary ?? '',
      parent,
      children: [],
    };
    if (parent) parent.children.push(row);
    else top.push(row);
    openOf.set(entry.machine, row);
  }
  const out: WaterfallRow[] = [];
  const flatten = (row: Building): void => {
    const { parent: _parent, children, ...plain } = row;
    out.push(row.open ? { ...plain, end: Math.max(row.start, until) } : plain);
    for (const child of children) flatten(child);
  };
  for (const row of top) flatten(row);
  return out;
}
