import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { homePaths, instancePaths } from '../adapters/instance/paths.js';
import { parseManifest } from '../adapters/snapshot/manifest.js';
import { snapshotPaths } from '../adapters/snapshot/store.js';

/**
 * Seconds until a capture's seal (a process of its own, reading the whole memory file) has recorded
 * the memory checksum in the manifest. Benches wait for it before timing: a resume that runs beside
 * it shares the two cores with it.
 */
export async function secondsUntilSealed(snapshotDir: string): Promise<number> {
  const started = performance.now();
  const manifest = join(snapshotDir, 'manifest.json');
  for (;;) {
    if (parseManifest(await readFile(manifest, 'utf8')).files.memory.checksum !== undefined) return (performance.now() - started) / 1000;
    if (performance.now() - started > 120_000) throw new Error(`no memory checksum in ${manifest} 120 s after the capture`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The same, for the snapshot an instance last ran from or captured. */
export async function instanceSnapshotSealed(home: string, name: string): Promise<number> {
  const key = (await readFile(instancePaths(home, name).snapshotKeyFile, 'utf8')).trim();
  return secondsUntilSealed(snapshotPaths(homePaths(home).snapshots, key).dir);
}
