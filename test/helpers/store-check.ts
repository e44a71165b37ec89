import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { homePaths } from '../../adapters/instance/paths.js';
import { parseManifest } from '../../adapters/snapshot/manifest.js';
import { listCaptureDirs, snapshotPaths, type SnapshotPaths } from '../../adapters/snapshot/store.js';
import { E2E_HOME } from './cli.js';

export function snapshotOf(name: string): SnapshotPaths {
  return snapshotPaths(homePaths(E2E_HOME).snapshots, name);
}

/** Flips 64 bytes in the middle of the snapshot's state.zst and drops the decompressed copy, so the next resume must read the corrupt .zst. */
export async function corruptStoredState(name: string): Promise<void> {
  const paths = snapshotOf(name);
  await truncate(paths.stateRaw, 0);
  const zst = await readFile(paths.stateZst);
  const middle = Math.floor(zst.length / 2);
  for (let offset = middle; offset < middle + 64; offset += 1) zst[offset] = (zst[offset] ?? 0) ^ 0xff;
  await writeFile(paths.stateZst, zst);
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * The snapshot's manifest.json and state.zst as they are (size and sha256 each), to prove a
 * failed attempt left a good snapshot untouched; undefined when there is no snapshot.
 */
export async function snapshotDigest(name: string): Promise<string | undefined> {
  const paths = snapshotOf(name);
  const parts: string[] = [];
  for (const file of [paths.manifest, paths.stateZst]) {
    const info = await stat(file).catch(() => undefined);
    if (!info) return undefined;
    parts.push(`${file.slice(paths.dir.length + 1)}:${info.size}:${await sha256File(file)}`);
  }
  return parts.join(' ');
}

/** A snapshot in place is whole by its own manifest: why not, or undefined. */
export async function snapshotProblem(name: string): Promise<string | undefined> {
  const paths = snapshotOf(name);
  let manifest: ReturnType<typeof parseManifest>;
  try {
    manifest = parseManifest(await readFile(paths.manifest, 'utf8'));
  } catch (error) {
    return `manifest.json: ${(error as Error).message}`;
  }
  const size = (await stat(paths.stateZst).catch(() => undefined))?.size;
  return size === manifest.files.stateZst.bytes ? undefined : `state.zst is ${size ?? 'missing'}, its manifest says ${manifest.files.stateZst.bytes} bytes`;
}

/**
 * What a finished command must not leave in the snapshot store: capture folders, the old
 * snapshot of a replacement, and temp files (`*.tmp-<pid>`) at any depth.
 */
export async function storeLeftovers(): Promise<string[]> {
  const root = homePaths(E2E_HOME).snapshots;
  const found = (await listCaptureDirs(root)).map((entry) => join(root, entry));
  return [...new Set([...found, ...(await leftoversUnder(root))])];
}

/** Temp files (`*.tmp-<pid>`) and replaced snapshots under `dir`, at any depth. */
export async function leftoversUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name);
    if (/\.tmp-\d+$/.test(entry.name) || entry.name.includes('.replaced-')) found.push(path);
    if (entry.isDirectory()) found.push(...(await leftoversUnder(path)));
  }
  return found;
}
