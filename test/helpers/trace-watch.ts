import { readFileSync } from 'node:fs';
import { instancePaths } from '../../adapters/instance/paths.js';
import type { TraceRecord } from '../../adapters/trace/record.js';
import { parseTraceLines } from '../../adapters/trace/file.js';
import { E2E_HOME } from './cli.js';

/** The instance's trace.jsonl as it is now, if it belongs to a run that began at or after `since`. */
export function currentRun(name: string, since: number, home = E2E_HOME): TraceRecord[] {
  const file = instancePaths(home, name).traceFile;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const entries = parseTraceLines(text, file);
  const began = Date.parse(entries[0]?.t ?? '');
  // The previous command's trace stays in place until the new run archives it.
  return Number.isFinite(began) && began >= since ? entries : [];
}

/**
 * Polls (every 2 ms: fast-path states last tens of ms) until the run that began at or after
 * `since` enters `state`, and returns that entry; undefined when `ended()` turns true first.
 */
export async function waitForState(name: string, state: string, since: number, ended: () => boolean, boundMs = 120_000, home = E2E_HOME): Promise<TraceRecord | undefined> {
  const deadline = Date.now() + boundMs;
  for (;;) {
    const entry = currentRun(name, since, home).find((candidate) => candidate.state === state);
    if (entry) return entry;
    if (ended()) return undefined;
    if (Date.now() > deadline) throw new Error(`instance "${name}" did not enter ${state} within ${boundMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** The state a machine is in now, by the run's last entry for it. */
export function currentState(name: string, since: number, machine: string): string | undefined {
  return currentRun(name, since)
    .filter((entry) => entry.machine === machine)
    .at(-1)?.state;
}
