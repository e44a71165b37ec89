import { appendFile, rm, stat } from 'node:fs/promises';
import type { SnapshotPaths } from './store.js';

/**
 * How many resumes of a snapshot in a row ended with its guest failing after `cont` (rotation or
 * health): one byte appended per failure, so clones failing at once each count (an O_APPEND write
 * is atomic); a healthy resume clears it.
 */
export async function readResumeFailures(paths: Pick<SnapshotPaths, 'failures'>): Promise<number> {
  return (await stat(paths.failures).catch(() => undefined))?.size ?? 0;
}

export async function countResumeFailure(paths: Pick<SnapshotPaths, 'failures'>): Promise<void> {
  await appendFile(paths.failures, 'x').catch(() => undefined);
}

export async function clearResumeFailures(paths: Pick<SnapshotPaths, 'failures'>): Promise<void> {
  await rm(paths.failures, { force: true }).catch(() => undefined);
}
