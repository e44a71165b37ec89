import { rm } from 'node:fs/promises';
import { homePaths } from '../../adapters/instance/paths.js';
import type { SnapshotManifest } from '../../adapters/snapshot/manifest.js';
import { isStoreKey, listSnapshotKeys, readSnapshot, snapshotPaths, type SnapshotPaths } from '../../adapters/snapshot/store.js';
import { sealedManifest, sealMemory } from '../../adapters/snapshot/seal.js';
import { snapshotFiles, verifyInFull } from '../../adapters/snapshot/verify.js';
import { WarmvmError } from '../../adapters/support/errors.js';
import { instancesNoting } from '../../adapters/vm/instances.js';
import type { Output } from '../output.js';
import { sizeText } from './list.js';

/** What `snapshot verify` found of one snapshot. */
interface Checked {
  key: string;
  dir: string;
  status: 'ok' | 'damaged' | 'missing';
  reason: string | undefined;
  fix: string | undefined;
}

/** A snapshot's files that fail their checksum: these, not a failure to read, mean the snapshot is bad. */
const DAMAGE = new Set(['E_SNAPSHOT_CORRUPT', 'E_SNAPSHOT_MISSING']);

/** `warmvm snapshot verify [KEY...]`: every file of each snapshot checksummed in full; exit 1 when any is damaged or missing. */
export async function snapshotVerifyCommand(options: { keys: string[]; home: string; output: Output }): Promise<number> {
  const root = homePaths(options.home).snapshots;
  const keys = options.keys.length > 0 ? [...new Set(options.keys)] : await listSnapshotKeys(root);
  if (keys.length === 0) {
    options.output.result({ ok: true, snapshots: [] }, `no snapshots in ${root}: nothing to verify`);
    return 0;
  }
  const results: Checked[] = [];
  for (const key of keys) results.push(await verifyOne(options.home, snapshotPaths(root, key), options.output));
  const bad = results.filter((result) => result.status !== 'ok');
  options.output.result(
    { ok: bad.length === 0, snapshots: results.map((result) => ({ ...result, reason: result.reason ?? null, fix: result.fix ?? null })) },
    [
      ...results.flatMap((result) =>
        result.status === 'ok' ? [`${result.key}: ok`] : [`${result.key}: ${result.status}: ${result.reason}`, ...(result.fix ? [`  fix: ${result.fix}`] : [])],
      ),
      bad.length === 0 ? `all ${results.length} snapshot(s) are whole` : `${bad.length} of ${results.length} snapshot(s) failed the check`,
    ].join('\n'),
  );
  return bad.length === 0 ? 0 : 1;
}

async function verifyOne(home: string, paths: SnapshotPaths, output: Output): Promise<Checked> {
  const checked = { key: paths.key, dir: paths.dir };
  const found = isStoreKey(paths.key) ? await readSnapshot(paths) : { kind: 'missing' as const };
  output.progress.line(`verifying snapshot ${paths.key}${found.kind === 'found' ? `: ${describeFiles(found.manifest)}` : ''}`);
  if (found.kind === 'missing') {
    return { ...checked, status: 'missing', reason: `there is no snapshot "${paths.key}" in ${paths.root}`, fix: '"warmvm list" shows the snapshots' };
  }
  if (found.kind === 'unreadable') return { ...checked, status: 'damaged', reason: found.reason, fix: await fixFor(home, paths) };
  try {
    // A checksum the capture's seal has not recorded yet is recorded now: that is a full check of the memory file.
    await verifyInFull(paths, (await sealedManifest(paths, found.manifest)).manifest);
    return { ...checked, status: 'ok', reason: undefined, fix: undefined };
  } catch (error) {
    if (!(error instanceof WarmvmError) || !DAMAGE.has(error.code)) throw error;
    // Its stamps said it was whole: forgotten, so the next start checks it in full and sets it aside.
    await rm(paths.verified, { force: true });
    return { ...checked, status: 'damaged', reason: error.message, fix: await fixFor(home, paths) };
  }
}

/** `warmvm snapshot seal KEY`: the memory file's checksum recorded, unless it is already or another process is on it. */
export async function snapshotSealCommand(options: { key: string; home: string; output: Output }): Promise<number> {
  const paths = snapshotPaths(homePaths(options.home).snapshots, options.key);
  const sealed = isStoreKey(paths.key) ? await sealMemory(paths) : ({ status: 'missing' } as const);
  const text: Record<typeof sealed.status, string> = {
    sealed: `${paths.key}: the memory file's checksum is recorded`,
    'recorded already': `${paths.key}: the memory file's checksum was recorded already`,
    busy: `${paths.key}: another warmvm (pid ${'holder' in sealed ? sealed.holder : '?'}) is recording it`,
    changed: `${paths.key}: ${'reason' in sealed ? sealed.reason : ''}; a start of its config sets it aside and captures anew`,
    missing: `there is no snapshot "${paths.key}" in ${paths.root}`,
  };
  options.output.result({ key: paths.key, dir: paths.dir, ...sealed }, text[sealed.status]);
  return sealed.status === 'changed' || sealed.status === 'missing' ? 1 : 0;
}

/** Starting any instance of its config replaces it; `reset --snapshot` of an instance that last used it removes it. */
async function fixFor(home: string, paths: SnapshotPaths): Promise<string> {
  const noting = await instancesNoting(home, paths.key);
  const remove = noting.length === 0 ? `remove ${paths.dir}` : noting.map((name) => `"warmvm reset --snapshot --name ${name}"`).join(' or ');
  return `start an instance of its config: the start checks it, sets it aside and captures a new one; or ${remove}`;
}

/** "mem.raw 12.5 MB of data, state.raw 90.0 KB": what a full check reads. */
function describeFiles(manifest: SnapshotManifest): string {
  return snapshotFiles(manifest)
    .map((file) => (file === manifest.files.memory ? `${file.name} ${sizeText(manifest.files.memory.dataBytes)} of data` : `${file.name} ${sizeText(file.bytes)}`))
    .join(', ');
}
