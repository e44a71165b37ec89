import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Digest, OCI_MANIFEST_MEDIA_TYPE } from '../../../adapters/oci/types.js';
import { RegistryClient, registryBaseUrl } from '../../../adapters/registry/client.js';
import { parseReference } from '../../../adapters/registry/reference.js';
import { freePort, killChild } from '../../../bench/local-registry.js';
import { externalAddress, sha256Digest } from '../../helpers/registry.js';

/*
 * The registry client over HTTPS to a registry that is not on loopback: Debian's docker-registry
 * listens with TLS on this machine's first non-loopback IPv4 address, with a server certificate for
 * that address (subjectAltName IP:…) from a CA made here with openssl. Node reads
 * NODE_EXTRA_CA_CERTS only when it starts, so the client runs in a child process (the built
 * dist/), once trusting the CA and once not.
 */

const execFileAsync = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const ADDRESS = externalAddress();
const NO_ADDRESS = 'skipped: this machine has no non-loopback IPv4 address to serve HTTPS on';
const READY_MS = 20_000;
const CHILD_MS = 60_000;
const BLOB_BYTES = 256 << 10;
const CONFIG_MEDIA_TYPE = 'application/vnd.oci.image.config.v1+json';
const LAYER_MEDIA_TYPE = 'application/vnd.oci.image.layer.v1.tar';
/** What the child imports, and the sources it is built from: a dist/ older than them would test other code. */
const BUILT = [
  ['dist/adapters/registry/client.js', 'adapters/registry/client.ts'],
  ['dist/adapters/registry/reference.js', 'adapters/registry/reference.ts'],
  ['dist/adapters/registry/credentials.js', 'adapters/registry/credentials.ts'],
  ['dist/adapters/support/errors.js', 'adapters/support/errors.ts'],
] as const;

interface TlsRegistry {
  /** `ADDRESS:PORT`. */
  registry: string;
  caFile: string;
  storageDir: string;
  log(): Promise<string>;
  stop(): Promise<void>;
}

/** A CA, and a server certificate signed by it for `host` (an IP address: subjectAltName IP:host). */
async function makeCertificates(dir: string, host: string): Promise<{ caFile: string; certFile: string; keyFile: string }> {
  const caFile = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca.key');
  const certFile = join(dir, 'server.pem');
  const keyFile = join(dir, 'server.key');
  const csrFile = join(dir, 'server.csr');
  const extFile = join(dir, 'server.ext');
  await execFileAsync('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    caKey,
    '-out',
    caFile,
    '-days',
    '2',
    '-subj',
    '/CN=warmvm-test-ca',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await execFileAsync('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', csrFile, '-subj', `/CN=${host}`]);
  await writeFile(
    extFile,
    [`subjectAltName=IP:${host}`, 'basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', 'extendedKeyUsage=serverAuth', ''].join('\n'),
  );
  await execFileAsync('openssl', ['x509', '-req', '-in', csrFile, '-CA', caFile, '-CAkey', caKey, '-CAcreateserial', '-out', certFile, '-days', '2', '-extfile', extFile]);
  return { caFile, certFile, keyFile };
}

/** docker-registry with TLS on `host`, storage in a temp folder; ready once curl, trusting only the CA, gets /v2/. */
async function startTlsRegistry(host: string): Promise<TlsRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'tls-helper-'));
  let child: ChildProcess | undefined;
  const stop = async (): Promise<void> => {
    if (child !== undefined) await killChild(child);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const { caFile, certFile, keyFile } = await makeCertificates(dir, host);
    const storageDir = join(dir, 'storage');
    await mkdir(storageDir);
    const logFile = join(dir, 'registry.log');
    // A free port can be taken by someone else between finding and binding it: try a few.
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const port = await freePort(host);
      const configFile = join(dir, 'config.yml');
      const config = [
        'version: 0.1',
        'log:',
        '  level: info',
        '  accesslog:',
        '    disabled: false',
        'storage:',
        '  filesystem:',
        `    rootdirectory: ${storageDir}`,
        'http:',
        `  addr: ${host}:${port}`,
        '  tls:',
        `    certificate: ${certFile}`,
        `    key: ${keyFile}`,
        '',
      ].join('\n');
      await writeFile(configFile, config);
      const log = createWriteStream(logFile, { flags: 'a' });
      const started = spawn('docker-registry', ['serve', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
      child = started;
      started.stdout?.pipe(log, { end: false });
      started.stderr?.pipe(log, { end: false });
      started.once('close', () => log.end());
      try {
        await waitReady(started, `https://${host}:${port}/v2/`, caFile, logFile);
        return { registry: `${host}:${port}`, caFile, storageDir, log: () => readFile(logFile, 'utf8'), stop };
      } catch (error) {
        lastError = error;
        await killChild(started);
      }
    }
    throw lastError;
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}

async function waitReady(child: ChildProcess, url: string, caFile: string, logFile: string): Promise<void> {
  const exited = new Promise<never>((_, reject) => {
    child.once('error', reject);
    child.once('exit', async (code, signal) => {
      const log = await readFile(logFile, 'utf8').catch(() => '');
      reject(new Error(`docker-registry exited (${code ?? signal}) before it answered:\n${log.slice(-2000)}`));
    });
  });
  exited.catch(() => undefined);
  const deadline = Date.now() + READY_MS;
  let last = '';
  while (Date.now() < deadline) {
    const answer = await Promise.race([
      execFileAsync('curl', ['-sS', '--noproxy', '*', '--max-time', '2', '--cacert', caFile, '-o', '/dev/null', '-w', '%{http_code}', url]).then(
        ({ stdout }) => stdout.trim(),
        (error: { stderr?: string }) => {
          last = error.stderr?.trim() || String(error);
          return '';
        },
      ),
      exited,
    ]);
    if (answer === '200') return;
    await Promise.race([new Promise((resolve) => setTimeout(resolve, 50)), exited]);
  }
  throw new Error(`docker-registry did not answer ${url} (curl --cacert ${caFile}) within ${READY_MS} ms: ${last}`);
}

/** What the child asks the client to do. */
interface Job {
  clientUrl: string;
  referenceUrl: string;
  reference: string;
  blobs: { file: string; digest: Digest; size: number }[];
  tag: string;
  manifest: string;
  mediaType: string;
  pull: { digest: Digest; size: number; dest: string };
}

/** What the child says it did: the step it got to, and the error that stopped it. */
interface Report {
  baseUrl: string;
  step: 'pushBlob' | 'putManifest' | 'getManifest' | 'pullBlob' | 'done';
  putDigest?: string;
  manifest?: { body: string; mediaType: string; digest: string };
  error?: { name?: string; code?: string; message: string; hint?: string; causes: { message: string; code?: string }[] };
}

/** Push the blobs, put the manifest under the tag, get it back, pull the blob; one JSON line on stdout, exit code 1 on an error. */
const CHILD_SCRIPT = `
const job = JSON.parse(process.env.WARMVM_TLS_JOB);
const { RegistryClient } = await import(job.clientUrl);
const { parseReference } = await import(job.referenceUrl);
const client = new RegistryClient(parseReference(job.reference), { credentials: null });
const report = { baseUrl: client.baseUrl, step: 'pushBlob' };
try {
  for (const blob of job.blobs) await client.pushBlob(blob.file, blob.digest, blob.size);
  report.step = 'putManifest';
  report.putDigest = await client.putManifest(job.tag, Buffer.from(job.manifest, 'base64'), job.mediaType);
  report.step = 'getManifest';
  const got = await client.getManifest(job.tag);
  report.manifest = { body: got.body.toString('base64'), mediaType: got.mediaType, digest: got.digest };
  report.step = 'pullBlob';
  await client.pullBlob(job.pull.digest, job.pull.size, job.pull.dest);
  report.step = 'done';
} catch (error) {
  const causes = [];
  for (let cause = error?.cause; cause instanceof Error && causes.length < 5; cause = cause.cause) {
    causes.push({ message: cause.message, code: typeof cause.code === 'string' ? cause.code : undefined });
  }
  report.error = { name: error?.name, code: error?.code, message: String(error?.message ?? error), hint: error?.hint, causes };
  process.exitCode = 1;
}
process.stdout.write(JSON.stringify(report) + '\\n');
`;

/** The environment without anything that changes which certificates Node trusts, or whether it checks them; then the CA, if given. */
function childEnv(caFile: string | undefined): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of ['NODE_EXTRA_CA_CERTS', 'NODE_TLS_REJECT_UNAUTHORIZED', 'NODE_OPTIONS', 'SSL_CERT_FILE', 'SSL_CERT_DIR']) delete env[name];
  if (caFile !== undefined) env.NODE_EXTRA_CA_CERTS = caFile;
  return env;
}

async function runClient(job: Job, caFile: string | undefined): Promise<{ exitCode: number | null; report: Report | undefined; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD_SCRIPT], {
    env: { ...childEnv(caFile), WARMVM_TLS_JOB: JSON.stringify(job) },
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: CHILD_MS,
    killSignal: 'SIGKILL',
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exitCode = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });
  const line = stdout.trim().split('\n').pop() ?? '';
  let report: Report | undefined;
  try {
    report = JSON.parse(line) as Report;
  } catch {
    report = undefined;
  }
  return { exitCode, report, stdout, stderr };
}

describe.skipIf(ADDRESS === undefined)(`the registry client over HTTPS to a registry on ${ADDRESS ?? NO_ADDRESS}`, () => {
  const address = ADDRESS as string;
  let registry: TlsRegistry;
  let dir: string;
  let blob: Buffer;
  let blobDigest: Digest;
  let blobFile: string;
  let configFile: string;
  let config: Buffer;
  let manifest: Buffer;

  function job(repository: string, dest: string): Job {
    return {
      clientUrl: pathToFileURL(join(ROOT, 'dist/adapters/registry/client.js')).href,
      referenceUrl: pathToFileURL(join(ROOT, 'dist/adapters/registry/reference.js')).href,
      reference: `${registry.registry}/${repository}`,
      blobs: [
        { file: configFile, digest: sha256Digest(config), size: config.length },
        { file: blobFile, digest: blobDigest, size: blob.length },
      ],
      tag: 'tls-1',
      manifest: manifest.toString('base64'),
      mediaType: OCI_MANIFEST_MEDIA_TYPE,
      pull: { digest: blobDigest, size: blob.length, dest },
    };
  }

  beforeAll(async () => {
    for (const [built, source] of BUILT) {
      const [builtAt, sourceAt] = await Promise.all([
        stat(join(ROOT, built)).then(
          (found) => found.mtimeMs,
          () => undefined,
        ),
        stat(join(ROOT, source)).then((found) => found.mtimeMs),
      ]);
      if (builtAt === undefined || builtAt < sourceAt)
        throw new Error(`${built} is ${builtAt === undefined ? 'missing' : `older than ${source}`}: run npm run build first (the client runs from dist/ in a child process)`);
    }
    dir = await mkdtemp(join(tmpdir(), 'tls-helper-'));
    registry = await startTlsRegistry(address);
    blob = randomBytes(BLOB_BYTES);
    blobDigest = sha256Digest(blob);
    blobFile = join(dir, 'blob');
    await writeFile(blobFile, blob);
    config = Buffer.from('{}');
    configFile = join(dir, 'config.json');
    await writeFile(configFile, config);
    manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST_MEDIA_TYPE,
        config: { mediaType: CONFIG_MEDIA_TYPE, digest: sha256Digest(config), size: config.length },
        layers: [{ mediaType: LAYER_MEDIA_TYPE, digest: blobDigest, size: blob.length }],
      }),
    );
  });

  afterAll(async () => {
    await registry?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('takes a registry on a non-loopback address for HTTPS', () => {
    expect(registryBaseUrl(parseReference(`${registry.registry}/warmvm/tls`))).toBe(`https://${registry.registry}`);
    expect(new RegistryClient(parseReference(`${registry.registry}/warmvm/tls`), { credentials: null }).baseUrl).toBe(`https://${registry.registry}`);
  });

  it('pushes a blob and a manifest and gets both back over HTTPS when NODE_EXTRA_CA_CERTS trusts the CA', async () => {
    const dest = join(dir, 'pulled');
    const { exitCode, report, stderr } = await runClient(job('warmvm/tls', dest), registry.caFile);
    expect(report, stderr).toBeDefined();
    expect(report?.error).toBeUndefined();
    expect(report).toMatchObject({ baseUrl: `https://${registry.registry}`, step: 'done' });
    expect(exitCode).toBe(0);
    expect(report?.putDigest).toBe(sha256Digest(manifest));
    expect(report?.manifest).toEqual({ body: manifest.toString('base64'), mediaType: OCI_MANIFEST_MEDIA_TYPE, digest: sha256Digest(manifest) });
    expect((await readFile(dest)).equals(blob)).toBe(true);
    // The bytes went to this registry, not somewhere else.
    const hex = blobDigest.slice('sha256:'.length);
    const stored = await readFile(join(registry.storageDir, 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data'));
    expect(stored.equals(blob)).toBe(true);
  });

  it('refuses the push with E_REGISTRY_UNREACHABLE naming the registry and the certificate when the CA is not trusted', async () => {
    const { exitCode, report, stderr } = await runClient(job('warmvm/untrusted', join(dir, 'untrusted')), undefined);
    expect(report, stderr).toMatchObject({ baseUrl: `https://${registry.registry}`, step: 'pushBlob' });
    expect(exitCode).toBe(1);
    const error = report?.error;
    expect(error).toMatchObject({ name: 'WarmvmError', code: 'E_REGISTRY_UNREACHABLE' });
    // The first request of a push (HEAD, is the blob there?) is the one refused; the registry and the certificate's verdict are named.
    expect(error?.message).toBe(
      `could not reach ${registry.registry} for the check for blob ${sha256Digest(config)} in ${registry.registry}/warmvm/untrusted: its certificate is not trusted here (UNABLE_TO_VERIFY_LEAF_SIGNATURE)`,
    );
    expect(error?.hint).toMatch(/private CA.*NODE_EXTRA_CA_CERTS/);
    expect(error?.causes).toContainEqual({ message: 'unable to verify the first certificate', code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
    // Nothing got past the handshake.
    expect(await registry.log()).not.toContain('/v2/warmvm/untrusted/');
  });
});
