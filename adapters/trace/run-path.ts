import type { WaterfallRow } from './waterfall.js';

/** One step of the way a run went: a root machine's state, and whether it was left by a failure. */
export interface PathStep {
  state: string;
  failed: boolean;
}

/**
 * The way a run went: its root machine's states from the first that ran a child machine (the
 * preamble every start shares left out), or all of them when none did (a stop, a capture).
 * A resume: `resume → running`; a fallback: `resume (failed) → settingAside → coldBoot → capture → resume → running`.
 */
export function runPath(rows: readonly WaterfallRow[]): PathStep[] {
  const roots = rows.map((row, index) => ({ row, index })).filter(({ row }) => row.depth === 0);
  const invokers = new Set(rows.map((row) => row.parent).filter((parent) => parent !== undefined));
  const first = roots.findIndex(({ index }) => invokers.has(index));
  return roots.slice(Math.max(0, first)).map(({ row }) => ({ state: row.state, failed: row.failed }));
}

/** `resume (failed) → coldBoot → running`: each state without its machine's name. */
export function formatRunPath(path: readonly PathStep[]): string {
  if (path.length === 0) return '(no states)';
  return path.map((step) => `${step.state.slice(step.state.indexOf('.') + 1)}${step.failed ? ' (failed)' : ''}`).join(' → ');
}
