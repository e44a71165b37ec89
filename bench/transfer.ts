/**
 * Snapshots that travel, against a registry on this machine (Debian's docker-registry, started by
 * bench/local-registry.ts and stopped on every way out, Ctrl-C included):
 * 1. an empty home to healthy from the registry (`snapshot pull` then `start`, path resume; and one
 *    `start` whose config has "snapshot": {"pull": REF}, path pull+resume) against the first start
 *    of a home with only the guest image (cold+capture+resume); target: the pull ≥ 5× faster. The
 *    guest image travels with the snapshot: the pulling homes must get the capturing one's image
 *    (its manifest.json byte for byte) and build nothing.
 * 2. the largest layer blob (and the memory file's, when that is another: the Debian profile's
 *    largest are its image disks) moved by warmvm and by curl to and from the same registry: push
 *    (RegistryClient.pushBlob to a fresh repository, since the registry checks presence per
 *    repository, against curl's POST + one monolithic PUT), pull (RegistryClient.pullBlob against
 *    curl -o, curl -o plus the fdatasync pullBlob does, and curl -o plus the sha256 it does);
 *    target: ≥ 70% of curl's MB/s. The whole `snapshot push` (to a fresh repository) and
 *    `snapshot pull` (part 1's) too. Then where
 *    a pull's time goes: Node's fetch alone, the blob's sha256, its decompression, the XXH128
 *    checksum of the unpacked file, each alone.
 * Every run alternates who goes first; ratios are taken pair by pair within a run. The image is
 * built once (not timed) in /tmp/bench-xfer-<profile>/image; each first start runs in a fresh home
 * with that image hard-linked in, each pull in a fresh empty home.
 *   node dist/bench/transfer.js [--runs N] [--profile demo|debian]
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { execa } from 'execa';
import { decompressFile } from '../adapters/oci/zstd-file.js';
import type { Digest } from '../adapters/oci/types.js';
import { RegistryClient } from '../adapters/registry/client.js';
import { layerEncoding, type PackedLayer, parseSnapshotArtifact } from '../adapters/snapshot/artifact.js';
import { fileChecksum } from '../adapters/snapshot/checksum.js';
import { blobPath } from '../adapters/snapshot/pack.js';
import { type LocalRegistry, startLocalRegistry } from './local-registry.js';
import { formatSummary, parseRuns, type Summary, summarize } from './stats.js';
import { CLI } from './warmvm-run.js';
import { helpIfAsked } from './argv.js';

helpIfAsked(import.meta.url);

const runs = parseRuns(process.argv, 3);
const profileArg = process.argv.indexOf('--profile');
const profile = profileArg >= 0 ? process.argv[profileArg + 1] : 'demo';
if (profile !== 'demo' && profile !== 'debian') throw new Error('--profile takes demo or debian');
const root = `/tmp/bench-xfer-${profile}`;
const imageHome = join(root, 'image');
const NAME = 'bench-xfer';
const MB = 1e6;
const spec: Record<string, unknown> = profile === 'debian' ? { image: { profile: 'debian' } } : {};

interface Cli {
  wall: number;
  json: Record<string, unknown>;
}

/** One `warmvm … --json` in `home` that must succeed (exit 0). */
async function warmvm(home: string, args: string[]): Promise<Cli> {
  const began = performance.now();
  const result = await execa('node', [CLI, ...args, '--json'], { reject: false, env: { WARMVM_HOME: home } });
  const wall = (performance.now() - began) / 1000;
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
  } catch {
    // Reported below with stderr.
  }
  if (result.exitCode !== 0) {
    throw new Error(`warmvm ${args.join(' ')} (WARMVM_HOME=${home}) failed, exit ${result.exitCode}: ${JSON.stringify(json.error ?? json)}\n${result.stderr.slice(-3000)}`);
  }
  return { wall, json };
}

/** Homes that may have a running instance: each is stopped on every way out. */
const homes = new Set<string>();
let registry: LocalRegistry | undefined;
let cleaned: Promise<void> | undefined;
const cleanup = (): Promise<void> =>
  (cleaned ??= (async () => {
    for (const home of homes) await execa('node', [CLI, 'stop', '--name', NAME], { reject: false, env: { WARMVM_HOME: home } });
    await registry?.stop();
  })());
// `on`, not `once`: execa's signal-exit re-raises a SIGINT that no other listener is left to take,
// which would kill this process before the cleanup ran. A second Ctrl-C exits at once (the registry
// is killed on exit all the same).
let interrupted = false;
process.on('SIGINT', () => {
  if (interrupted) process.exit(130);
  interrupted = true;
  process.stderr.write('\ninterrupted: stopping the instances and the registry (Ctrl-C again to force)\n');
  void cleanup()
    .then(async () => {
      for (const home of homes) await rm(home, { recursive: true, force: true });
    })
    .finally(() => process.exit(130));
});

async function freshHome(prefix: string): Promise<string> {
  const home = await mkdtemp(join(root, `${prefix}-`));
  homes.add(home);
  return home;
}

async function start(home: string, args: string[], expected: string): Promise<Cli> {
  const run = await warmvm(home, ['start', '--name', NAME, ...args]);
  if (run.json.outcome !== 'healthy' || run.json.path !== expected)
    throw new Error(`start in ${home}: expected healthy by path ${expected}, got ${String(run.json.outcome)} by ${String(run.json.path)}`);
  await warmvm(home, ['stop', '--name', NAME]);
  return run;
}

async function configFile(home: string, extra: Record<string, unknown>): Promise<string[]> {
  if (profile === 'demo' && Object.keys(extra).length === 0) return [];
  const file = join(home, 'config.json');
  await writeFile(file, JSON.stringify({ ...spec, ...extra }));
  return ['--config', file];
}

async function timed<T>(fn: () => Promise<T>): Promise<number> {
  const began = performance.now();
  await fn();
  return (performance.now() - began) / 1000;
}

/** The guest image came with the snapshot: the capturing home's manifest.json byte for byte, and no build's downloads. */
async function checkImageTravelled(home: string, imageDir: string, manifest: string): Promise<void> {
  const got = await readFile(join(home, 'images', imageDir, 'manifest.json'), 'utf8').catch(() => undefined);
  if (got !== manifest) throw new Error(`${home}/images/${imageDir}/manifest.json is ${got === undefined ? 'missing' : "not the capturing home's"}`);
  // What a build leaves: the demo's downloaded packages, the Debian profile's debs and build folders.
  const built = (await readdir(join(home, 'images'))).filter((entry) => entry === '.debian-packages' || entry === '.debian-debs' || entry.startsWith('.debian-build'));
  if (built.length > 0) throw new Error(`${home}/images/ has ${built.join(', ')}: the guest was built, not pulled`);
}

/** curl's monolithic upload: POST a session, then one PUT of the whole file with the digest. */
async function curlPush(base: string, repository: string, file: string, digest: Digest): Promise<void> {
  const opened = await execa('curl', ['-sS', '-f', '-X', 'POST', '-H', 'Content-Length: 0', '-o', '/dev/null', '-D', '-', `${base}/v2/${repository}/blobs/uploads/`]);
  const location = /^location:\s*(\S+)\s*$/im.exec(opened.stdout)?.[1];
  if (location === undefined) throw new Error(`curl POST: no Location in\n${opened.stdout}`);
  const url = `${new URL(location, base).href}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
  const put = await execa('curl', ['-sS', '-f', '-T', file, '-H', 'Content-Type: application/octet-stream', '-H', 'Expect:', '-o', '/dev/null', '-w', '%{http_code}', url]);
  if (put.stdout !== '201') throw new Error(`curl PUT answered ${put.stdout}`);
}

async function curlPull(base: string, repository: string, digest: Digest, dest: string, size: number): Promise<void> {
  await execa('curl', ['-sS', '-f', '-o', dest, `${base}/v2/${repository}/blobs/${digest}`]);
  if ((await stat(dest)).size !== size) throw new Error(`curl -o ${dest}: not ${size} bytes`);
}

/** What Node's fetch (undici, as RegistryClient uses it) moves alone: the body read and dropped. */
async function fetchOnly(url: string, size: number): Promise<void> {
  const response = await fetch(url, { headers: { 'accept-encoding': 'identity' } });
  let bytes = 0;
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) bytes += chunk.length;
  if (bytes !== size) throw new Error(`fetch ${url}: ${bytes} bytes, not ${size}`);
}

async function datasync(file: string): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

async function sha256File(file: string): Promise<void> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  hash.digest();
}

const first: number[] = [];
const pullOnly: number[] = [];
const pullStart: number[] = [];
const pullThenStart: number[] = [];
const configPull: number[] = [];
const ratioPullThenStart: number[] = [];
const ratioConfigPull: number[] = [];
const pullStartPhases: Record<string, number[]> = {};
const configPullPhases: Record<string, number[]> = {};
const wholePullMBs: number[] = [];
/** The whole `snapshot push` and `snapshot pull` (MB/s of every byte they moved), and against curl on the largest blob. */
const whole = { push: [] as number[], pull: [] as number[], pushRatio: [] as number[], pullRatio: [] as number[] };
interface BlobFigures {
  layer: PackedLayer;
  /** The file it unpacks to. */
  fileBytes: number;
  push: { blob: number[]; curl: number[]; ratio: number[] };
  pull: { blob: number[]; curl: number[]; curlSynced: number[]; curlHashed: number[]; ratio: number[]; ratioSynced: number[]; ratioHashed: number[] };
  split: { fetch: number[]; sha256: number[]; decompress: number[]; checksum: number[] };
}
/** The largest layer blob, and the memory file's when that is another. */
let measured: BlobFigures[] = [];
let layers: PackedLayer[] = [];
let pushedOnce: { wall: number; sentBytes: number; sentBlobs: number; blobs: number } | undefined;
let accel = '?';
let succeeded = false;

try {
  await mkdir(imageHome, { recursive: true });
  process.stderr.write(`  building the ${profile} guest in ${imageHome} when missing (not timed)\n`);
  const built = await execa('node', [CLI, 'guest', 'build', '--profile', profile], { reject: false, env: { WARMVM_HOME: imageHome }, stdio: ['ignore', 2, 2] });
  if (built.exitCode !== 0) throw new Error(`warmvm guest build --profile ${profile} failed (exit ${built.exitCode})`);
  registry = await startLocalRegistry(root);
  const base = `http://${registry.registry}`;
  const ref = `${registry.registry}/xfer/${profile}:bench`;
  const repository = `xfer/${profile}`;
  process.stderr.write(`  registry ${registry.registry}; snapshot ${ref}\n`);

  let pusher: string | undefined;
  let imageDir = '';
  let imageManifest = '';
  for (let i = 0; i < runs; i += 1) {
    // 1a. The first start of a home that has the image (hard-linked: never written) and nothing else.
    const a = await freshHome(`run${i}-a`);
    await execa('cp', ['-al', join(imageHome, 'images'), join(a, 'images')]);
    const capture = await start(a, await configFile(a, {}), 'cold+capture+resume');
    accel = String(capture.json.accel ?? '?');
    first.push(capture.wall);
    if (pusher === undefined) {
      pusher = a;
      const pushed = await warmvm(a, ['snapshot', 'push', ref, '--name', NAME]);
      pushedOnce = { wall: pushed.wall, sentBytes: Number(pushed.json.sentBytes), sentBlobs: Number(pushed.json.sentBlobs), blobs: Number(pushed.json.blobs) };
      const body = await readFile(blobPath(a, String(pushed.json.digest) as Digest));
      layers = parseSnapshotArtifact(body, ref).layers;
      const largest = layers.reduce((best, layer) => (layer.descriptor.size > best.descriptor.size ? layer : best));
      const memory = layers.find((layer) => layer.role === 'memory') as PackedLayer;
      measured = [...new Set([largest, memory])].map((layer) => ({
        layer,
        fileBytes: 0,
        push: { blob: [], curl: [], ratio: [] },
        pull: { blob: [], curl: [], curlSynced: [], curlHashed: [], ratio: [], ratioSynced: [], ratioHashed: [] },
        split: { fetch: [], sha256: [], decompress: [], checksum: [] },
      }));
      imageDir = layers.find((layer) => layer.imageDir !== undefined)?.imageDir ?? '';
      if (imageDir === '') throw new Error('the pushed snapshot carries no guest image layer');
      imageManifest = await readFile(join(a, 'images', imageDir, 'manifest.json'), 'utf8');
    } else {
      await rm(a, { recursive: true, force: true });
      homes.delete(a);
    }

    // 1b. An empty home: snapshot pull, then start (resume).
    const b = await freshHome(`run${i}-b`);
    const pulled = await warmvm(b, ['snapshot', 'pull', ref]);
    const resumed = await start(b, await configFile(b, {}), 'resume');
    await checkImageTravelled(b, imageDir, imageManifest);
    for (const [phase, value] of Object.entries((resumed.json.seconds ?? {}) as Record<string, number>)) (pullStartPhases[phase] ??= []).push(value);
    pullOnly.push(pulled.wall);
    pullStart.push(resumed.wall);
    pullThenStart.push(pulled.wall + resumed.wall);
    ratioPullThenStart.push(capture.wall / (pulled.wall + resumed.wall));
    wholePullMBs.push(Number(pulled.json.receivedBytes) / MB / pulled.wall);
    await rm(b, { recursive: true, force: true });
    homes.delete(b);

    // 1c. An empty home whose config pulls: one start (pull+resume).
    const c = await freshHome(`run${i}-c`);
    const pulling = await start(c, await configFile(c, { snapshot: { pull: ref } }), 'pull+resume');
    await checkImageTravelled(c, imageDir, imageManifest);
    configPull.push(pulling.wall);
    ratioConfigPull.push(capture.wall / pulling.wall);
    for (const [phase, value] of Object.entries((pulling.json.seconds ?? {}) as Record<string, number>)) (configPullPhases[phase] ??= []).push(value);
    await rm(c, { recursive: true, force: true });
    homes.delete(c);

    // 2. Each measured blob, by warmvm and by curl, to fresh repositories (the registry checks presence per repository).
    const client = (repo: string) => new RegistryClient({ registry: registry?.registry ?? '', host: '127.0.0.1', repository: repo }, { credentials: null });
    const from = pusher;
    const pushes: (() => Promise<void>)[] = [
      async () => {
        const pushed = await warmvm(from, ['snapshot', 'push', `${registry?.registry}/xfer/cli-${i}:bench`, '--name', NAME]);
        if (Number(pushed.json.sentBlobs) !== Number(pushed.json.blobs))
          throw new Error(`the push to xfer/cli-${i} sent ${String(pushed.json.sentBlobs)} of ${String(pushed.json.blobs)} blobs`);
        whole.push.push(Number(pushed.json.sentBytes) / MB / pushed.wall);
      },
      ...measured.flatMap((one, k) => {
        const { digest, size } = one.layer.descriptor;
        const file = blobPath(from, digest);
        return [
          async () => {
            let sent = false;
            const seconds = await timed(async () => {
              sent = (await client(`xfer/blob-${i}-${k}`).pushBlob(file, digest, size)).sent;
            });
            if (!sent) throw new Error(`pushBlob to xfer/blob-${i}-${k} sent nothing: the registry had the blob`);
            one.push.blob.push(size / MB / seconds);
          },
          async () => {
            one.push.curl.push(size / MB / (await timed(() => curlPush(base, `xfer/curl-${i}-${k}`, file, digest))));
          },
        ];
      }),
    ];
    for (const task of i % 2 === 0 ? pushes : [...pushes].reverse()) await task();

    const scratch = await mkdtemp(join(root, `run${i}-pull-`));
    const pulls = measured.flatMap((one) => {
      const { digest, size } = one.layer.descriptor;
      return [
        async () => {
          const dest = join(scratch, 'warmvm.blob');
          one.pull.blob.push(size / MB / (await timed(() => client(repository).pullBlob(digest, size, dest))));
          await rm(dest, { force: true });
        },
        async () => {
          one.split.fetch.push(size / MB / (await timed(() => fetchOnly(`${base}/v2/${repository}/blobs/${digest}`, size))));
        },
        async () => {
          const dest = join(scratch, 'curl.blob');
          const download = await timed(() => curlPull(base, repository, digest, dest, size));
          // pullBlob flushes what it wrote before it renames it into place; curl does not.
          const flush = await timed(() => datasync(dest));
          one.pull.curl.push(size / MB / download);
          one.pull.curlSynced.push(size / MB / (download + flush));
          await rm(dest, { force: true });
        },
      ];
    });
    for (const task of i % 2 === 0 ? pulls : [...pulls].reverse()) await task();

    for (const one of measured) {
      const last = (values: number[]) => values.at(-1) as number;
      one.push.ratio.push(last(one.push.blob) / last(one.push.curl));
      one.pull.ratio.push(last(one.pull.blob) / last(one.pull.curl));
      one.pull.ratioSynced.push(last(one.pull.blob) / last(one.pull.curlSynced));
      // Where a pull's time goes besides the download: each step alone, on the same blob.
      const file = blobPath(from, one.layer.descriptor.digest);
      one.split.sha256.push(await timed(() => sha256File(file)));
      // What a download checked by its digest costs at the least when curl writes it and the file is hashed after.
      const { size } = one.layer.descriptor;
      one.pull.curlHashed.push(size / MB / (size / MB / last(one.pull.curl) + last(one.split.sha256)));
      one.pull.ratioHashed.push(last(one.pull.blob) / last(one.pull.curlHashed));
      if (layerEncoding(one.layer) === 'raw') {
        // The blob is the file: a pull links it into place.
        one.fileBytes = one.layer.descriptor.size;
        one.split.checksum.push(await timed(() => fileChecksum(file)));
        continue;
      }
      const unpacked = join(scratch, one.layer.name);
      one.split.decompress.push(
        await timed(async () => {
          one.fileBytes = (await decompressFile(file, unpacked)).bytes;
        }),
      );
      one.split.checksum.push(await timed(() => fileChecksum(unpacked)));
      await rm(unpacked, { force: true });
    }
    await rm(scratch, { recursive: true, force: true });
    const largest = measured[0] as BlobFigures;
    whole.pull.push(wholePullMBs.at(-1) as number);
    whole.pushRatio.push((whole.push.at(-1) as number) / (largest.push.curl.at(-1) as number));
    whole.pullRatio.push((whole.pull.at(-1) as number) / (largest.pull.curl.at(-1) as number));

    const rates = measured.map(
      (one) =>
        `${one.layer.name} push ${(one.push.blob.at(-1) as number).toFixed(0)}/${(one.push.curl.at(-1) as number).toFixed(0)}, pull ${(one.pull.blob.at(-1) as number).toFixed(0)}/${(one.pull.curl.at(-1) as number).toFixed(0)}`,
    );
    process.stderr.write(
      `  run ${i + 1}/${runs}: first start ${capture.wall.toFixed(2)} s; pull ${pulled.wall.toFixed(2)} s + start ${resumed.wall.toFixed(2)} s; ` +
        `start with snapshot.pull ${pulling.wall.toFixed(2)} s; MB/s warmvm/curl: ${rates.join('; ')}; whole push ${(whole.push.at(-1) as number).toFixed(0)}, pull ${(whole.pull.at(-1) as number).toFixed(0)}\n`,
    );
  }
  succeeded = true;
} finally {
  await cleanup();
  if (succeeded) {
    for (const home of homes) await rm(home, { recursive: true, force: true });
  } else if (homes.size > 0) {
    process.stderr.write(`  kept for a look: ${[...homes].join(', ')}\n`);
  }
}

const s = summarize;
const mbs = (label: string, summary: Summary) => formatSummary(label, summary, 'MB/s');
const once = pushedOnce as NonNullable<typeof pushedOnce>;
console.log(`warmvm snapshots through a registry on 127.0.0.1 (docker-registry), profile ${profile}, ${accel}, ${runs} runs, whole CLI processes`);
console.log(
  `push once (pack + send, not in the ratios): ${once.wall.toFixed(2)} s, ${once.sentBlobs} of ${once.blobs} blobs, ${(once.sentBytes / MB).toFixed(1)} MB sent (${(once.sentBytes / MB / once.wall).toFixed(0)} MB/s)`,
);
console.log('1. an empty home to healthy');
console.log(formatSummary('first start (cold+capture+resume)', s(first)));
console.log(formatSummary('snapshot pull', s(pullOnly)));
console.log(formatSummary('then start (resume)', s(pullStart)));
console.log(formatSummary('snapshot pull + start', s(pullThenStart)));
console.log(formatSummary('start with snapshot.pull', s(configPull)));
console.log(`${formatSummary('first start / (pull + start)', s(ratioPullThenStart), '×')}   target ≥ 5×`);
console.log(`${formatSummary('first start / start with pull', s(ratioConfigPull), '×')}   target ≥ 5×`);
console.log('   phases of the start after snapshot pull (seconds, as start --json reports them):');
for (const [phase, values] of Object.entries(pullStartPhases)) console.log(`     ${formatSummary(phase, s(values))}`);
console.log('   phases of the start with snapshot.pull:');
for (const [phase, values] of Object.entries(configPullPhases)) console.log(`     ${formatSummary(phase, s(values))}`);
console.log(
  `2. throughput (MB/s of the compressed blob); the snapshot's layers: ${layers.map((layer) => `${layer.name} ${(layer.descriptor.size / MB).toFixed(1)} MB`).join(', ')}`,
);
console.log(mbs('warmvm snapshot push (whole)', s(whole.push)));
console.log(formatSummary('  / curl on the largest blob', s(whole.pushRatio), '×'));
console.log(mbs('warmvm snapshot pull (whole)', s(whole.pull)));
console.log(formatSummary('  / curl on the largest blob', s(whole.pullRatio), '×'));
for (const one of measured) {
  const { layer } = one;
  console.log(
    `   ${layer.name} (${layer.role}${layer === measured[0]?.layer ? ', the largest' : ''}): ${layerEncoding(layer) === 'raw' ? `${(layer.descriptor.size / MB).toFixed(1)} MB, a raw layer (the file as it is)` : `${(layer.descriptor.size / MB).toFixed(1)} MB compressed, ${(one.fileBytes / MB).toFixed(1)} MB unpacked`}`,
  );
  console.log(mbs('push: RegistryClient.pushBlob', s(one.push.blob)));
  console.log(mbs('push: curl POST + one PUT', s(one.push.curl)));
  console.log(`${formatSummary('push: pushBlob / curl', s(one.push.ratio), '×')}   target ≥ 0.7×`);
  console.log(mbs('pull: RegistryClient.pullBlob', s(one.pull.blob)));
  console.log(mbs('pull: curl -o', s(one.pull.curl)));
  console.log(mbs('pull: curl -o, then fdatasync', s(one.pull.curlSynced)));
  console.log(`${formatSummary('pull: pullBlob / curl', s(one.pull.ratio), '×')}   target ≥ 0.7×`);
  console.log(formatSummary('pull: pullBlob / (curl + fdatasync)', s(one.pull.ratioSynced), '×'));
  console.log(mbs('pull: curl -o, then sha256 of the file', s(one.pull.curlHashed)));
  console.log(formatSummary('pull: pullBlob / (curl + sha256)', s(one.pull.ratioHashed), '×'));
  console.log('     the parts of its pull, each alone (pullBlob = fetch + write + sha256 + fdatasync):');
  console.log(`     ${mbs('Node fetch, body dropped', s(one.split.fetch))}`);
  console.log(`     ${formatSummary('sha256 of the blob', s(one.split.sha256))}`);
  console.log(`     ${one.split.decompress.length === 0 ? 'decompress: none, the blob is linked into place' : formatSummary('decompress (sparse zstd)', s(one.split.decompress))}`);
  console.log(`     ${formatSummary('XXH128 checksum of the file', s(one.split.checksum))}`);
}
console.log(`command: node ${relative(process.cwd(), process.argv[1] ?? '')} ${process.argv.slice(2).join(' ')}`.trimEnd());
