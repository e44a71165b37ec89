/** An arrow of the statechart as this needs it. */
export interface TakenEdge {
  id: string;
  from: string;
  to: string;
  kind: string;
}

/** A state entered: which state of its machine it left, and on what event. */
export interface TakenEntry {
  machine: string;
  state: string;
  from?: string;
  event?: { type?: unknown };
}

/**
 * The ids of the edges a run took: for each state entered from another, the edges between the two
 * of the kind its event says (an answer, an error, a bound passing, Ctrl-C), or all of them when
 * the event does not tell (a transient state's `always` repeats the event before it).
 *
 * Self-contained on purpose (no import, no helper outside it): the inspector page runs this very
 * function, from its source text, so the page and its tests agree.
 */
export function takenEdges(edges: readonly TakenEdge[], entries: readonly TakenEntry[]): string[] {
  const taken = new Set<string>();
  for (const entry of entries) {
    if (!entry.from) continue;
    const between = edges.filter((edge) => edge.from === entry.from && edge.to === entry.state);
    const type = typeof entry.event?.type === 'string' ? entry.event.type : '';
    const kinds = type.startsWith('xstate.done.')
      ? ['done', 'fallback']
      : type.startsWith('xstate.error.')
        ? ['error']
        : type.startsWith('xstate.after.')
          ? ['bound']
          : type === 'CANCEL'
            ? ['cancel']
            : [];
    // An `always` edge is taken on whatever event entered its state: it wins when there is one.
    const always = between.filter((edge) => edge.kind === 'always');
    const matching = always.length > 0 ? always : between.filter((edge) => kinds.includes(edge.kind));
    for (const edge of matching.length > 0 ? matching : between) taken.add(edge.id);
  }
  return [...taken];
}
