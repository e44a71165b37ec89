import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** How many earlier runs' traces an instance keeps beside the current one. */
export const KEPT_TRACES = 10;

/**
 * Makes room for a new run's trace: the previous `trace.jsonl` moves into `traces/`, named by
 * when it was last written, and only the newest KEPT_TRACES stay. Nothing of a failed run is
 * lost to the next command.
 */
export async function archivePreviousTrace(traceFile: string, keep = KEPT_TRACES): Promise<string | undefined> {
  const previous = await stat(traceFile).catch(() => undefined);
  if (!previous) return undefined;
  const folder = tracesFolder(traceFile);
  await mkdir(folder, { recursive: true });
  const archived = join(folder, `${previous.mtime.toISOString().replace(/[:.]/g, '-')}.jsonl`);
  await rename(traceFile, archived);
  const names = (await readdir(folder)).filter((name) => name.endsWith('.jsonl')).sort();
  for (const name of names.slice(0, Math.max(0, names.length - keep))) await rm(join(folder, name), { force: true });
  return archived;
}

/** The folder beside trace.jsonl that keeps earlier runs' traces. */
export function tracesFolder(traceFile: string): string {
  return join(dirname(traceFile), 'traces');
}
