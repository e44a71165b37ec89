import { lstat } from 'node:fs/promises';

/** Whether anything (a file, a socket, a link) is at `path`. */
export async function fileExists(path: string): Promise<boolean> {
  return (await lstat(path).catch(() => undefined)) !== undefined;
}
