/**
 * Snapshots that travel, against a registry on this machine (Debian's docker-registry, started by
 * bench/local-registry.ts and stopped on every way out, Ctrl-C included):
 * 1. an empty home to healthy from the registry (`snapshot pull` then `start`, path resume; and one
 *    `start` whose config has "snapshot": {"pull": REF}, path pull+resume) against the first start
 *    of a home with only the guest image (cold+capture+resume); target: the pull ≥ 5× faster. The
 *    guest image travels with the snapshot: the pulling homes must get the capturing one's image
 *    (its manifest.json byte for byte) and build nothing.
 * 2. the largest layer blob moved by warmvm and by curl to and from the same registry: push (the
 *    whole `snapshot push` to a fresh repository, RegistryClient.pushBlob alone, and curl's POST +
 *    one monolithic PUT), pull (the whole `snapshot pull` from part 1, RegistryClient.pullBlob alone,
 *    and curl -o); target: ≥ 70% of curl's MB/s. Then where a pull's time goes: the blob's sha256,
 *    its decompression, the XXH128 checksum of the unpacked file, each alone.
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
import { type PackedLayer, parseSnapshotArtifact } from '../adapters/snapshot/artifact.js';
import { fileChecksum } from '../adapters/snapshot/checksum.js';
import { blobPath } from '../adapters/snapshot/pack.js';
import { type LocalRegistry, startLocalRegistry } from './local-registry.js';
import { formatSummary, parseRuns, type Summary, summarize } from './stats.js';
import { CLI } from './warmvm-run.js';

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
process.once('SIGINT', () => {
  process.stderr.write('\ninterrupted: stopping the instances and the registry\n');
  void cleanup().finally(() => process.exit(130));
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
const push = { cli: [] as number[], blob: [] as number[], curl: [] as number[], ratioBlob: [] as number[], ratioCli: [] as number[] };
const pull = {
  cli: [] as number[],
  blob: [] as number[],
  curl: [] as number[],
  curlSynced: [] as number[],
  ratioBlob: [] as number[],
  ratioSynced: [] as number[],
  ratioCli: [] as number[],
};
const split = { fetch: [] as number[], sha256: [] as number[], decompress: [] as number[], checksum: [] as number[] };
let pushedOnce: { wall: number; sentBytes: number; sentBlobs: number; blobs: number } | undefined;
let largest: PackedLayer | undefined;
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
      const { layers } = parseSnapshotArtifact(body, ref);
      largest = layers.reduce((best, layer) => (layer.descriptor.size > best.descriptor.size ? layer : best));
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

    // 2. The largest blob, by warmvm and by curl, to fresh repositories (the registry checks presence per repository).
    const blob = largest as PackedLayer;
    const { digest, size } = blob.descriptor;
    const file = blobPath(pusher, digest);
    const client = (repo: string) => new RegistryClient({ registry: registry?.registry ?? '', host: '127.0.0.1', repository: repo }, { credentials: null });
    const pushes: (() => Promise<void>)[] = [
      async () => {
        const whole = await warmvm(pusher as string, ['snapshot', 'push', `${registry?.registry}/xfer/cli-${i}:bench`, '--name', NAME]);
        if (Number(whole.json.sentBlobs) !== Number(whole.json.blobs))
          throw new Error(`the push to xfer/cli-${i} sent ${String(whole.json.sentBlobs)} of ${String(whole.json.blobs)} blobs`);
        push.cli.push(Number(whole.json.sentBytes) / MB / whole.wall);
      },
      async () => {
        let sent = false;
        const seconds = await timed(async () => {
          sent = (await client(`xfer/blob-${i}`).pushBlob(file, digest, size)).sent;
        });
        if (!sent) throw new Error(`pushBlob to xfer/blob-${i} sent nothing: the registry had the blob`);
        push.blob.push(size / MB / seconds);
      },
      async () => {
        push.curl.push(size / MB / (await timed(() => curlPush(base, `xfer/curl-${i}`, file, digest))));
      },
    ];
    for (const one of i % 2 === 0 ? pushes : [...pushes].reverse()) await one();
    push.ratioBlob.push((push.blob.at(-1) as number) / (push.curl.at(-1) as number));
    push.ratioCli.push((push.cli.at(-1) as number) / (push.curl.at(-1) as number));

    const scratch = await mkdtemp(join(root, `run${i}-pull-`));
    const pulls: (() => Promise<void>)[] = [
      async () => {
        const dest = join(scratch, 'warmvm.blob');
        pull.blob.push(size / MB / (await timed(() => client(repository).pullBlob(digest, size, dest))));
        await rm(dest, { force: true });
      },
      async () => {
        split.fetch.push(size / MB / (await timed(() => fetchOnly(`${base}/v2/${repository}/blobs/${digest}`, size))));
      },
      async () => {
        const dest = join(scratch, 'curl.blob');
        const download = await timed(() => curlPull(base, repository, digest, dest, size));
        // pullBlob flushes what it wrote before it renames it into place; curl does not.
        const flush = await timed(() => datasync(dest));
        pull.curl.push(size / MB / download);
        pull.curlSynced.push(size / MB / (download + flush));
        await rm(dest, { force: true });
      },
    ];
    for (const one of i % 2 === 0 ? pulls : [...pulls].reverse()) await one();
    pull.cli.push(wholePullMBs.at(-1) as number);
    pull.ratioBlob.push((pull.blob.at(-1) as number) / (pull.curl.at(-1) as number));
    pull.ratioSynced.push((pull.blob.at(-1) as number) / (pull.curlSynced.at(-1) as number));
    pull.ratioCli.push((pull.cli.at(-1) as number) / (pull.curl.at(-1) as number));

    // Where a pull's time goes besides the download: each step alone, on the same blob.
    split.sha256.push(await timed(() => sha256File(file)));
    const unpacked = join(scratch, blob.name);
    split.decompress.push(await timed(() => decompressFile(file, unpacked)));
    split.checksum.push(await timed(() => fileChecksum(unpacked)));
    await rm(scratch, { recursive: true, force: true });

    process.stderr.write(
      `  run ${i + 1}/${runs}: first start ${capture.wall.toFixed(2)} s; pull ${pulled.wall.toFixed(2)} s + start ${resumed.wall.toFixed(2)} s; ` +
        `start with snapshot.pull ${pulling.wall.toFixed(2)} s; push MB/s cli ${(push.cli.at(-1) as number).toFixed(0)} blob ${(push.blob.at(-1) as number).toFixed(0)} ` +
        `curl ${(push.curl.at(-1) as number).toFixed(0)}; pull MB/s cli ${(pull.cli.at(-1) as number).toFixed(0)} blob ${(pull.blob.at(-1) as number).toFixed(0)} curl ${(pull.curl.at(-1) as number).toFixed(0)}\n`,
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
const blob = largest as PackedLayer;
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
  `2. the largest layer blob: ${blob.name} (${blob.role}), ${(blob.descriptor.size / MB).toFixed(1)} MB compressed; MB/s of that blob (the whole push and pull: of every byte they moved)`,
);
console.log(mbs('push: warmvm snapshot push (whole)', s(push.cli)));
console.log(mbs('push: RegistryClient.pushBlob', s(push.blob)));
console.log(mbs('push: curl POST + one PUT', s(push.curl)));
console.log(`${formatSummary('push: pushBlob / curl', s(push.ratioBlob), '×')}   target ≥ 0.7×`);
console.log(formatSummary('push: snapshot push / curl', s(push.ratioCli), '×'));
console.log(mbs('pull: warmvm snapshot pull (whole)', s(pull.cli)));
console.log(mbs('pull: RegistryClient.pullBlob', s(pull.blob)));
console.log(mbs('pull: curl -o', s(pull.curl)));
console.log(mbs('pull: curl -o, then fdatasync', s(pull.curlSynced)));
console.log(`${formatSummary('pull: pullBlob / curl', s(pull.ratioBlob), '×')}   target ≥ 0.7×`);
console.log(formatSummary('pull: pullBlob / (curl + fdatasync)', s(pull.ratioSynced), '×'));
console.log(formatSummary('pull: snapshot pull / curl', s(pull.ratioCli), '×'));
console.log(`   a pull's parts on that blob, each alone (pullBlob = fetch + write + sha256 + fdatasync):`);
console.log(`     ${mbs('Node fetch, body dropped', s(split.fetch))}`);
console.log(`     ${formatSummary('sha256 of the blob', s(split.sha256))}`);
console.log(`     ${formatSummary('decompress (sparse zstd)', s(split.decompress))}`);
console.log(`     ${formatSummary('XXH128 checksum of the file', s(split.checksum))}`);
console.log(`command: node ${relative(process.cwd(), process.argv[1] ?? '')} ${process.argv.slice(2).join(' ')}`.trimEnd());
