import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, open, rename, rm, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from '../support/logger.js';
import { syncDir } from '../support/durable.js';
import { abortError, throwIfAborted, WarmvmError } from '../support/errors.js';
import { silentLogger } from '../support/logger.js';
import { redactValues, truncate } from '../support/redact.js';
import { sleep } from '../support/sleep.js';
import { type CurlOutcome, type CurlRun, findCurl, startCurl } from './curl.js';
import { type Digest, isDigest, OCI_INDEX_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE } from '../oci/types.js';
import { type CredentialLookup, dockerConfigPath, lookupCredentials, type RegistryCredentials } from './credentials.js';
import type { RegistryReference } from './reference.js';

/*
 * A client of the OCI distribution API (push and pull of blobs and manifests) on Node's global
 * fetch. Hand-written: of the npm clients looked at, @snyk/docker-registry-v2-client only reads,
 * docker-registry-client (Joyent's) has no v2 push, and @sigstore/oci uploads a blob from a Buffer
 * held whole in memory (POST then one PUT); none continues a cut download with Range or reports
 * progress. Multi-GB snapshot layers need all three: chunked uploads streamed from the file,
 * downloads that continue after a cut, and progress.
 *
 * Plain HTTP only for a registry on this machine (localhost, 127.0.0.0/8, ::1), as Docker does;
 * every other host is HTTPS, and a plain-HTTP URL for one (a redirect, a token service) is refused.
 * Credentials come from Docker's config.json (./credentials.ts) and are sent only to the registry's
 * own origin and its token service: a redirect elsewhere (blob storage) goes without Authorization.
 * No password, token or Authorization header is written into an error, a cause or a log line.
 */

/** Bytes per PATCH of a chunked upload: large enough that a GB costs few requests, small enough to resend. */
export const DEFAULT_CHUNK_BYTES = 32 << 20;
/** A manifest larger than this is refused (the spec lets registries refuse more than 4 MiB). */
export const DEFAULT_MAX_MANIFEST_BYTES = 4 << 20;
/** What getManifest accepts: an OCI image manifest or an OCI index. */
export const MANIFEST_ACCEPT = [OCI_MANIFEST_MEDIA_TYPE, OCI_INDEX_MEDIA_TYPE].join(', ');
const MAX_REDIRECTS = 5;
/** Error bodies and token answers are read up to this much. */
const MAX_SMALL_BODY = 1 << 20;
/** Downloaded bytes are gathered into writes of about this size. */
const WRITE_BYTES = 1 << 20;
/** Writes of a download in flight at once, while the next bytes are received and hashed. */
const WRITES_AHEAD = 4;
/** Answers to a read that mean "not now": tried again after these pauses, or the Retry-After the registry gives (at most RETRY_AFTER_MAX_MS). */
const TRANSIENT_STATUSES = new Set([429, 502, 503, 504]);
const RETRY_PAUSES_MS = [250, 1000, 3000];
const RETRY_AFTER_MAX_MS = 10_000;
/** What curl wrote is read back and hashed in pieces of this size, looking again this often when it is ahead. */
const TAIL_BYTES = 4 << 20;
const TAIL_POLL_MS = 3;
/** How much of a download curl wrote is flushed to the disk at a time while the rest arrives. */
const FLUSH_EVERY_BYTES = 64 << 20;
const USER_AGENT = 'warmvm';

export interface TransferOptions {
  signal?: AbortSignal;
  /** Called as bytes go out or come in, and once at the end (also when nothing had to move). */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export interface RequestOptions {
  signal?: AbortSignal;
}

export interface RegistryClientOptions {
  /** Bytes per PATCH of an upload; DEFAULT_CHUNK_BYTES unless set. */
  chunkBytes?: number;
  /** The Docker config.json to read credentials from; `$DOCKER_CONFIG/config.json` or `~/.docker/config.json` unless set. */
  dockerConfigPath?: string;
  /** Credentials to use instead of config.json's; null for anonymous. */
  credentials?: RegistryCredentials | null;
  logger?: Logger;
  /** Who receives a blob's bytes: curl when it is installed (see ./curl.ts), else Node's fetch; 'fetch' always uses fetch. */
  downloader?: 'curl' | 'fetch';
}

export interface Manifest {
  body: Buffer;
  mediaType: string;
  digest: Digest;
}

/** Whether `host` is this machine: `localhost`, 127.0.0.0/8 or ::1 (also written in full, or IPv4-mapped). */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (bare === 'localhost') return true;
  if (isIP(bare) === 4) return bare.split('.')[0] === '127';
  if (isIP(bare) !== 6) return false;
  const canonical = new URL(`http://[${bare}]/`).hostname;
  return canonical === '[::1]' || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(canonical);
}

/** The base URL of a registry's API: `https://host[:port]`, or `http://` for a loopback host. Docker Hub's API is at registry-1.docker.io. */
export function registryBaseUrl(reference: Pick<RegistryReference, 'registry' | 'host'>): string {
  const registry = reference.registry === 'docker.io' || reference.registry === 'index.docker.io' ? 'registry-1.docker.io' : reference.registry;
  return `${isLoopbackHost(reference.host) ? 'http' : 'https'}://${registry}`;
}

/** Whether warmvm may talk to `url` at all: HTTPS, or HTTP to this machine. */
function allowedUrl(url: URL): boolean {
  return url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname));
}

interface Call {
  /** What is being done, as a noun phrase for messages: "the upload of blob sha256:… to host/repo". */
  what: string;
  method: string;
  url: string;
  headers?: Record<string, string>;
  /** Made anew for every try (an auth retry, a redirect): a stream is read once. */
  body?: () => RequestInit['body'];
  signal: AbortSignal | undefined;
}

/** Where a download's bytes go: from `start` of `size`, into `hash`, reported as they come. */
interface Landing {
  call: Call;
  start: number;
  size: number;
  hash: Hash;
  onProgress: TransferOptions['onProgress'];
  /** The error for more bytes than `size`. */
  tooLong: () => WarmvmError;
}

interface Answer {
  response: Response;
  /** The URL that answered, after redirects: a relative Location resolves against it. */
  url: string;
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

type RegistryCode = 'E_REGISTRY' | 'E_REGISTRY_MISSING';

/** Node's codes for a certificate chain that does not end at a CA it trusts. */
const CERTIFICATE_UNTRUSTED = /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|CERT_UNTRUSTED)$/;

export class RegistryClient {
  readonly registry: string;
  readonly repository: string;
  readonly baseUrl: string;
  /** `host[:port]/repository`, for messages. */
  readonly name: string;
  private readonly origin: string;
  private readonly chunkBytes: number;
  private readonly options: RegistryClientOptions;
  private readonly logger: Logger;
  private lookup: Promise<CredentialLookup> | undefined;
  /** The Authorization sent with each request to the registry once a challenge was answered. */
  private current: string | undefined;
  /** Bearer tokens by the scope they were asked for. */
  private readonly tokens = new Map<string, string>();
  /** Every secret this client holds, scrubbed from any text a registry sends back into a message. */
  private readonly secrets = new Set<string>();

  constructor(reference: Pick<RegistryReference, 'registry' | 'host' | 'repository'>, options: RegistryClientOptions = {}) {
    this.registry = reference.registry;
    this.repository = reference.repository;
    this.baseUrl = registryBaseUrl(reference);
    this.origin = new URL(this.baseUrl).origin;
    this.name = `${reference.registry}/${reference.repository}`;
    this.chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    if (!Number.isSafeInteger(this.chunkBytes) || this.chunkBytes < 1) throw new RangeError(`chunkBytes must be a positive integer, not ${this.chunkBytes}`);
    this.options = options;
    this.logger = (options.logger ?? silentLogger).child({ module: 'registry', registry: reference.registry });
  }

  /** Whether the repository has the blob (HEAD). */
  async hasBlob(digest: Digest, options: RequestOptions = {}): Promise<boolean> {
    const call: Call = { what: `the check for blob ${digest} in ${this.name}`, method: 'HEAD', url: this.blobUrl(digest), signal: options.signal };
    const { response } = await this.send(call);
    if (response.status === 200) return true;
    if (response.status === 404) return false;
    throw await this.httpError(call, response);
  }

  /**
   * Uploads a file as a blob, unless the repository has it already (`sent: false`): POST a session,
   * PATCH it chunk by chunk (each read from the file as it is sent), PUT it closed with the digest,
   * which the registry checks.
   */
  async pushBlob(file: string, digest: Digest, size: number, options: TransferOptions = {}): Promise<{ sent: boolean }> {
    const { signal, onProgress } = options;
    const what = `the upload of blob ${digest} to ${this.name}`;
    if (await this.hasBlob(digest, { signal })) {
      onProgress?.(size, size);
      return { sent: false };
    }
    const found = await stat(file);
    if (found.size !== size) {
      throw new WarmvmError('E_REGISTRY_DIGEST', `${file} has ${found.size} bytes, not the ${size} of blob ${digest} it is pushed as`, {
        hint: 'the file changed after it was packed: pack the snapshot again',
      });
    }

    const start: Call = { what, method: 'POST', url: `${this.baseUrl}/v2/${this.repository}/blobs/uploads/`, headers: { 'content-length': '0' }, signal };
    const opened = await this.send(start);
    if (opened.response.status !== 202) throw await this.httpError(start, opened.response);
    let location = this.nextLocation(start, opened);
    try {
      let offset = 0;
      while (offset < size) {
        const from = offset;
        const to = Math.min(size, from + this.chunkBytes) - 1;
        const patch: Call = {
          what,
          method: 'PATCH',
          url: location,
          headers: { 'content-type': 'application/octet-stream', 'content-range': `${from}-${to}`, 'content-length': String(to - from + 1) },
          body: () => readRange(file, from, to, (read) => onProgress?.(from + read, size), signal),
          signal,
        };
        const patched = await this.send(patch);
        if (patched.response.status !== 202) throw await this.httpError(patch, patched.response);
        const range = patched.response.headers.get('range');
        const took = range === null ? undefined : /^(?:bytes=)?0-(\d+)$/.exec(range)?.[1];
        if (took !== undefined && Number(took) !== to) {
          throw new WarmvmError('E_REGISTRY', `${what} failed: after the bytes ${from}-${to} the registry ${this.registry} holds 0-${took}`, {
            hint: 'push again (the registry may have lost part of the upload)',
          });
        }
        location = this.nextLocation(patch, patched);
        offset = to + 1;
      }
      const close: Call = {
        what,
        method: 'PUT',
        url: `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`,
        headers: { 'content-type': 'application/octet-stream', 'content-length': '0' },
        signal,
      };
      const closed = await this.send(close);
      if (closed.response.status !== 201 && closed.response.status !== 204) {
        const detail = await this.describeResponse(closed.response);
        if (closed.response.status === 400 && detail.includes('DIGEST_INVALID')) {
          throw new WarmvmError('E_REGISTRY_DIGEST', `${what} failed: the registry ${this.registry} found that the bytes sent do not have that digest (${detail})`, {
            hint: `${file} changed while it was sent, or does not hold that blob: pack the snapshot again`,
          });
        }
        throw this.statusError(close, closed.response.status, detail);
      }
      location = '';
    } finally {
      // An upload that did not finish is cancelled, so the registry can drop what it holds of it.
      if (location !== '') await this.cancelUpload(location);
    }
    onProgress?.(size, size);
    return { sent: true };
  }

  /**
   * Downloads a blob into `dest`, through `dest.partial`: a partial file left by a cut download is
   * hashed and continued with Range (from the start when the registry ignores it). The whole is
   * checked against `digest` and `size`, flushed, and renamed to `dest`; a blob that does not match
   * is deleted, `dest` never written. A continued download that does not match is tried once more
   * from the start (the partial file may have been the damaged part) before it is refused.
   */
  async pullBlob(digest: Digest, size: number, dest: string, options: TransferOptions = {}): Promise<void> {
    const partial = `${dest}.partial`;
    const resumed = (await fileSize(partial)) > 0;
    try {
      await this.pullInto(digest, size, dest, options);
    } catch (error) {
      if (!resumed || !(error instanceof WarmvmError) || error.code !== 'E_REGISTRY_DIGEST' || (await fileSize(partial)) > 0) throw error;
      this.logger.debug({ digest }, 'the continued download does not match: downloading it whole');
      await this.pullInto(digest, size, dest, options);
    }
  }

  private async pullInto(digest: Digest, size: number, dest: string, options: TransferOptions): Promise<void> {
    const { signal, onProgress } = options;
    const what = `the download of blob ${digest} from ${this.name}`;
    const partial = `${dest}.partial`;
    const mismatch = (why: string): WarmvmError =>
      new WarmvmError('E_REGISTRY_DIGEST', `the blob ${digest} from ${this.name} ${why}`, {
        hint: `the registry ${this.registry} serves damaged or different bytes for it: push the snapshot again, or ask the registry's operator`,
      });

    let hash = createHash('sha256');
    let have = await fileSize(partial);
    if (have > size) {
      await rm(partial, { force: true });
      have = 0;
    }
    const handle = await open(partial, have > 0 ? 'r+' : 'w');
    let failed: WarmvmError | undefined;
    let finished = false;
    try {
      if (have > 0) await hashPrefix(handle, have, hash, signal, what);
      onProgress?.(have, size);
      if (have < size) {
        // With curl, the request here asks for one byte: it settles authentication and redirects, and curl fetches the rest from where they led.
        const curl = this.options.downloader === 'fetch' ? undefined : await findCurl();
        const range = (from: number): Record<string, string> => (curl !== undefined ? { range: `bytes=${from}-${from}` } : from > 0 ? { range: `bytes=${from}-` } : {});
        const call: Call = { what, method: 'GET', url: this.blobUrl(digest), headers: { 'accept-encoding': 'identity', ...range(have) }, signal };
        const startOver = async (): Promise<void> => {
          have = 0;
          hash = createHash('sha256');
          await handle.truncate(0);
        };
        let { response, url } = await this.send(call);
        if (have > 0 && response.status === 416) {
          // The registry holds less than what is here: start over.
          await discard(response);
          await startOver();
          call.headers = { 'accept-encoding': 'identity', ...range(0) };
          ({ response, url } = await this.send(call));
        }
        if (response.status === 200 && have > 0) {
          // The registry ignored Range and sends the whole blob: start over.
          this.logger.debug({ digest }, 'the registry ignored Range: downloading from the start');
          await startOver();
        } else if (response.status === 206) {
          const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(response.headers.get('content-range') ?? '');
          if (range === null || Number(range[1]) !== have) {
            await discard(response);
            throw new WarmvmError(
              'E_REGISTRY',
              `${what} failed: asked for bytes from ${have}, the registry ${this.registry} sent ${response.headers.get('content-range') ?? 'no Content-Range'}`,
              {
                hint: `delete ${partial} and pull again`,
              },
            );
          }
          if (range[3] !== '*' && Number(range[3]) !== size) {
            await discard(response);
            throw (failed = mismatch(`has ${range[3]} bytes, not the ${size} its manifest names`));
          }
        } else if (response.status !== 200) {
          throw await this.httpError(call, response);
        }
        const length = response.headers.get('content-length');
        if (length !== null && have + Number(length) > size) {
          await discard(response);
          throw (failed = mismatch(`has ${have + Number(length)} bytes, not the ${size} its manifest names`));
        }
        const tooLong = () => (failed = mismatch(`has more than the ${size} bytes its manifest names`));
        have = await this.receive({ call, start: have, size, hash, onProgress, tooLong }, response, handle);
        if (curl !== undefined && response.status === 206 && have < size) {
          have = await this.receiveByCurl({ call, start: have, size, hash, onProgress, tooLong }, curl, url, partial);
        }
      }
      await handle.datasync();
      finished = true;
    } finally {
      await handle.close();
      // A blob that does not match goes; so does a partial file that got nothing. The rest is kept to continue from.
      if (failed !== undefined || (!finished && have === 0 && (await fileSize(partial)) === 0)) await rm(partial, { force: true });
    }
    if (have < size) {
      throw new WarmvmError('E_REGISTRY', `${what} stopped at ${have} of ${size} bytes: the registry ${this.registry} ended the blob early`, {
        hint: 'pull again: it continues where it stopped',
      });
    }
    const got = `sha256:${hash.digest('hex')}`;
    if (got !== digest) {
      await rm(partial, { force: true });
      throw mismatch(`has digest ${got}, not the ${digest} its manifest names`);
    }
    await rename(partial, dest);
    await syncDir(dirname(dest));
    onProgress?.(size, size);
  }

  /** A small blob (a config), read whole into memory and checked against its digest; more than maxBytes is refused. */
  async getBlob(digest: Digest, maxBytes: number, options: RequestOptions = {}): Promise<Buffer> {
    const call: Call = {
      what: `the download of blob ${digest} from ${this.name}`,
      method: 'GET',
      url: this.blobUrl(digest),
      headers: { 'accept-encoding': 'identity' },
      signal: options.signal,
    };
    const { response } = await this.send(call);
    if (response.status !== 200) throw await this.httpError(call, response);
    const body = await this.readLimited(call, response, maxBytes);
    const got = sha256(body);
    if (got !== digest) {
      throw new WarmvmError('E_REGISTRY_DIGEST', `the blob ${digest} from ${this.name} has digest ${got}, not the ${digest} its manifest names`, {
        hint: `the registry ${this.registry} serves damaged or different bytes for it: push the snapshot again, or ask the registry's operator`,
      });
    }
    return body;
  }

  /** Puts a manifest under a tag or its digest; returns its digest (sha256 of `body`). */
  async putManifest(reference: string, body: Buffer, mediaType: string, options: RequestOptions = {}): Promise<Digest> {
    const digest = sha256(body);
    const what = `the upload of manifest ${reference} to ${this.name}`;
    if (isDigest(reference) && reference !== digest) throw new WarmvmError('E_REGISTRY_DIGEST', `${what} was refused: the manifest's digest is ${digest}, not ${reference}`);
    const call: Call = { what, method: 'PUT', url: this.manifestUrl(reference), headers: { 'content-type': mediaType }, body: () => body, signal: options.signal };
    const { response } = await this.send(call);
    if (response.status !== 201 && response.status !== 200 && response.status !== 204) throw await this.httpError(call, response);
    await discard(response);
    const stored = response.headers.get('docker-content-digest');
    if (stored !== null && stored !== '' && stored !== digest) {
      throw new WarmvmError('E_REGISTRY_DIGEST', `${what}: the registry ${this.registry} stored it as ${stored}, not as the ${digest} of the bytes sent`, {
        hint: 'the registry rewrote the manifest: use a registry that stores OCI manifests as sent',
      });
    }
    return digest;
  }

  /** Gets a manifest (an OCI image manifest or index) by tag or digest; a digest is checked against the bytes. */
  async getManifest(reference: string, options: RequestOptions & { maxBytes?: number } = {}): Promise<Manifest> {
    const call: Call = {
      what: `the download of manifest ${reference} from ${this.name}`,
      method: 'GET',
      url: this.manifestUrl(reference),
      headers: { accept: MANIFEST_ACCEPT },
      signal: options.signal,
    };
    const { response } = await this.send(call);
    if (response.status !== 200) throw await this.httpError(call, response);
    const body = await this.readLimited(call, response, options.maxBytes ?? DEFAULT_MAX_MANIFEST_BYTES);
    const digest = sha256(body);
    if (isDigest(reference) && digest !== reference) {
      throw new WarmvmError('E_REGISTRY_DIGEST', `the manifest ${reference} from ${this.name} has digest ${digest}`, {
        hint: `the registry ${this.registry} serves damaged or different bytes for it: push the snapshot again, or ask the registry's operator`,
      });
    }
    return { body, mediaType: mediaTypeOf(response, body), digest };
  }

  private blobUrl(digest: Digest): string {
    return `${this.baseUrl}/v2/${this.repository}/blobs/${digest}`;
  }

  private manifestUrl(reference: string): string {
    return `${this.baseUrl}/v2/${this.repository}/manifests/${encodeURIComponent(reference).replace(/%3A/g, ':')}`;
  }

  /** The upload's next URL, from the Location of an answer (relative ones resolved against the URL that answered). */
  private nextLocation(call: Call, answer: Answer): string {
    const location = answer.response.headers.get('location');
    if (location === null || location === '') {
      throw new WarmvmError('E_REGISTRY', `${call.what} failed: the registry ${this.registry} answered ${call.method} with HTTP ${answer.response.status} but no Location`, {
        hint: 'the registry does not follow the OCI distribution spec for uploads',
      });
    }
    const next = new URL(location, answer.url);
    if (!allowedUrl(next)) throw this.plainHttpError(call, next);
    return next.href;
  }

  private async cancelUpload(location: string): Promise<void> {
    try {
      const { response } = await this.send({ what: 'the cancel of an upload', method: 'DELETE', url: location, signal: AbortSignal.timeout(5_000) });
      await discard(response);
    } catch (error) {
      this.logger.debug({ err: { message: (error as Error).message } }, 'could not cancel the upload');
    }
  }

  /**
   * The rest of a blob, from `url` (where the registry's redirects led), fetched by curl into the
   * partial file and hashed as it lands there; returns the bytes the file then has. The
   * Authorization goes along only when `url` is the registry's own origin. A cut leaves what
   * arrived in the file, to continue from.
   */
  private async receiveByCurl(landing: Landing, curl: string, url: string, partial: string): Promise<number> {
    const { call, start, size, hash, onProgress, tooLong } = landing;
    const authorization = new URL(url).origin === this.origin ? this.current : undefined;
    let run: CurlRun;
    try {
      run = await startCurl(curl, { url, authorization, file: partial, from: start, signal: call.signal });
    } catch (error) {
      throw this.networkError(call, error);
    }
    let outcome: CurlOutcome | Error | undefined;
    run.finished.then(
      (value) => {
        outcome = value;
      },
      (error: Error) => {
        outcome = error;
      },
    );
    let have = start;
    const reading = await open(partial, 'r');
    // The file is flushed as it grows, so the flush the caller makes at the end finds little left
    // (a flush of the whole at the end cost as much as the download itself here).
    let flushing: Promise<void> | undefined;
    let flushedTo = start;
    try {
      const buffer = Buffer.allocUnsafe(TAIL_BYTES);
      for (;;) {
        // Once curl has exited, a read that finds nothing more means the file holds all it wrote.
        const ended = outcome !== undefined;
        const { bytesRead } = await reading.read(buffer, 0, buffer.length, have);
        if (bytesRead > 0) {
          if (have + bytesRead > size) throw tooLong();
          hash.update(buffer.subarray(0, bytesRead));
          have += bytesRead;
          onProgress?.(have, size);
          if (flushing === undefined && have - flushedTo >= FLUSH_EVERY_BYTES) {
            flushedTo = have;
            flushing = reading.datasync().then(
              () => {
                flushing = undefined;
              },
              () => {
                flushing = undefined;
              },
            );
          }
        } else if (ended) {
          break;
        } else {
          await Promise.race([run.finished.catch(() => undefined), sleep(TAIL_POLL_MS)]);
        }
      }
    } finally {
      run.stop();
      await run.finished.catch(() => undefined);
      await flushing;
      await reading.close();
    }
    if (call.signal?.aborted) throw abortError(call.signal, call.what);
    if (outcome instanceof Error) throw this.networkError(call, outcome);
    const { exitCode, status, stderr } = outcome as CurlOutcome;
    if (exitCode === 0 && status === 206) return have;
    if (status >= 400) throw this.statusError(call, status, `HTTP ${status}`);
    throw this.curlError(call, exitCode, status, stderr, have, size);
  }

  /** curl's failure as the fetch path would say it: unreachable, an untrusted certificate, or cut short (the partial file kept). */
  private curlError(call: Call, exitCode: number, status: number, stderr: string, have: number, size: number): WarmvmError {
    const host = new URL(call.url).host;
    const said = this.scrub(stderr.replace(/^curl: /, '') || `curl exited with ${exitCode}`);
    if (exitCode === 60 || exitCode === 77) {
      return new WarmvmError('E_REGISTRY_UNREACHABLE', `could not reach ${host} for ${call.what}: its certificate is not trusted here (${said})`, {
        hint: 'if the registry uses a private CA, give it to warmvm: NODE_EXTRA_CA_CERTS=/path/to/ca.pem warmvm …',
      });
    }
    if (exitCode === 6 || exitCode === 7 || exitCode === 35) {
      return new WarmvmError('E_REGISTRY_UNREACHABLE', `could not reach ${host} for ${call.what} (${said})`, {
        hint: `check that ${host} is up and reachable from here, then try again`,
      });
    }
    if (exitCode === 47 || (status >= 300 && status < 400) || status === 200) {
      return new WarmvmError(
        'E_REGISTRY',
        `${call.what} failed: ${new URL(call.url).host} answered its first byte, then ${status === 200 ? 'ignored the range of the rest' : 'redirected the rest elsewhere'} (HTTP ${status})`,
        {
          hint: "the registry's storage answers ranged requests unlike the first: pull again, or ask the registry's operator",
        },
      );
    }
    return new WarmvmError('E_REGISTRY', `${call.what} stopped at ${have} of ${size} bytes (${said})`, { hint: 'pull again: it continues where it stopped' });
  }

  /** Writes a response's body into the partial file from `have` on, hashing it; returns the bytes the file then has. */
  private async receive(landing: Landing, response: Response, handle: FileHandle): Promise<number> {
    const { call, start, size, hash, onProgress, tooLong } = landing;
    if (response.body === null) return start;
    let written = start;
    const pending: Uint8Array[] = [];
    let pendingBytes = 0;
    // Writes go on while the next bytes arrive and are hashed: waiting for each one halved the rate.
    const inFlight = new Set<Promise<void>>();
    let writeError: unknown;
    let durable = start;
    const flush = async (): Promise<void> => {
      if (pendingBytes === 0) return;
      const buffer = pending.length === 1 ? (pending[0] as Uint8Array) : Buffer.concat(pending, pendingBytes);
      const at = written;
      hash.update(buffer);
      written += buffer.length;
      pending.length = 0;
      pendingBytes = 0;
      const write = writeAll(handle, buffer, at).then(
        () => {
          durable += buffer.length;
          onProgress?.(durable, size);
        },
        (error: unknown) => {
          writeError ??= error;
        },
      );
      inFlight.add(write);
      void write.finally(() => inFlight.delete(write));
      if (inFlight.size >= WRITES_AHEAD) await Promise.race(inFlight);
      if (writeError !== undefined) throw writeError;
    };
    const settle = async (): Promise<void> => {
      await Promise.all(inFlight);
      if (writeError !== undefined) throw writeError;
    };
    try {
      for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
        if (written + pendingBytes + chunk.length > size) throw tooLong();
        pending.push(chunk);
        pendingBytes += chunk.length;
        if (pendingBytes >= WRITE_BYTES) await flush();
      }
      await flush();
      await settle();
    } catch (error) {
      // What arrived before the cut stays in the partial file for the next pull to continue from.
      if (!(error instanceof WarmvmError)) await flush().catch(() => undefined);
      await Promise.allSettled(inFlight);
      if (error instanceof WarmvmError) throw error;
      throw this.networkError(call, error);
    }
    return written;
  }

  private async readLimited(call: Call, response: Response, maxBytes: number): Promise<Buffer> {
    const tooBig = (bytes: string): WarmvmError =>
      new WarmvmError('E_REGISTRY', `${call.what} was refused: it is ${bytes} bytes, more than the ${maxBytes} warmvm reads for it`, {
        hint: 'the reference names something other than a warmvm snapshot',
      });
    const length = response.headers.get('content-length');
    if (length !== null && Number(length) > maxBytes) {
      await discard(response);
      throw tooBig(length);
    }
    try {
      return await readBody(response, maxBytes, () => tooBig(`more than ${maxBytes}`));
    } catch (error) {
      if (error instanceof WarmvmError) throw error;
      throw this.networkError(call, error);
    }
  }

  /**
   * One request, through the registry's authentication (answering a 401 once per scheme and scope)
   * and redirects. A read the registry answers with 429, 502, 503 or 504 (busy, or a proxy in front
   * of it restarting) is tried again after a pause, a few times, before its answer is given back.
   */
  private async send(call: Call): Promise<Answer> {
    throwIfAborted(call.signal, call.what);
    const refreshed = new Set<string>();
    for (let retried = 0; ; ) {
      const sent = this.current;
      const answer = await this.fetchFollowing(call, sent);
      const status = answer.response.status;
      if (TRANSIENT_STATUSES.has(status) && (call.method === 'GET' || call.method === 'HEAD') && retried < RETRY_PAUSES_MS.length) {
        const pause = Math.min(RETRY_AFTER_MAX_MS, retryAfterMs(answer.response.headers.get('retry-after')) ?? (RETRY_PAUSES_MS[retried] as number));
        this.logger.debug({ status, pause }, 'the registry is busy: trying again');
        await discard(answer.response);
        await sleep(pause, call.signal);
        retried += 1;
        continue;
      }
      if (status !== 401) return answer;
      const challenge = parseChallenge(answer.response.headers.get('www-authenticate'));
      const detail = await this.describeResponse(answer.response);
      if (!(await this.answerChallenge(call, challenge, sent, refreshed, detail))) throw await this.authError(detail);
    }
  }

  /** Sets what the next try sends for a 401's challenge; false when there is nothing new to try. */
  private async answerChallenge(call: Call, challenge: Challenge | undefined, sent: string | undefined, refreshed: Set<string>, detail: string): Promise<boolean> {
    if (challenge?.scheme === 'basic') {
      const credentials = (await this.credentials()).credentials;
      if (credentials === undefined) return false;
      const header = this.basicHeader(credentials);
      if (sent === header) return false;
      this.current = header;
      return true;
    }
    if (challenge?.scheme === 'bearer' && challenge.params.realm !== undefined) {
      const scope = challenge.params.scope ?? '';
      const cached = this.tokens.get(scope);
      if (cached !== undefined && cached !== sent) {
        this.current = cached;
        return true;
      }
      if (refreshed.has(scope)) return false;
      refreshed.add(scope);
      const token = await this.fetchToken(call, challenge.params.realm, challenge.params.service, scope, detail);
      this.tokens.set(scope, token);
      this.current = token;
      return true;
    }
    return false;
  }

  /** A Bearer token from the registry's token service, asked with the basic credentials when there are any. */
  private async fetchToken(call: Call, realm: string, service: string | undefined, scope: string, detail: string): Promise<string> {
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new WarmvmError('E_REGISTRY_AUTH', `${call.what} failed: the registry ${this.registry} names "${truncate(realm, 100)}" as its token service, which is not a URL`, {
        hint: "the registry's authentication is misconfigured: ask its operator",
      });
    }
    if (!allowedUrl(url)) throw this.plainHttpError(call, url);
    if (service !== undefined) url.searchParams.set('service', service);
    for (const one of scope.split(' ')) if (one !== '') url.searchParams.append('scope', one);
    const credentials = (await this.credentials()).credentials;
    const tokenCall: Call = { what: `${call.what} (its token from ${url.host})`, method: 'GET', url: url.href, headers: { accept: 'application/json' }, signal: call.signal };
    // The basic credentials go to the token service's own origin only, as the registry's go to the registry's.
    const { response } = await this.fetchFollowing(tokenCall, credentials === undefined ? undefined : this.basicHeader(credentials), url.origin);
    if (response.status === 401 || response.status === 403) {
      throw await this.authError(`${detail}; its token service ${url.host} answered ${await this.describeResponse(response)}`);
    }
    if (response.status !== 200) throw await this.httpError(tokenCall, response);
    let token: unknown;
    try {
      const parsed = JSON.parse((await readBody(response, MAX_SMALL_BODY, () => new Error('too large'))).toString('utf8')) as Record<string, unknown>;
      token = parsed.token ?? parsed.access_token;
    } catch {
      token = undefined;
    }
    if (typeof token !== 'string' || token === '') {
      throw new WarmvmError('E_REGISTRY_AUTH', `${call.what} failed: the token service ${url.host} of the registry ${this.registry} answered without a token`, {
        hint: "the registry's authentication is misconfigured: ask its operator",
      });
    }
    this.secrets.add(token);
    const header = `Bearer ${token}`;
    this.secrets.add(header);
    return header;
  }

  private basicHeader(credentials: RegistryCredentials): string {
    const header = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
    this.secrets.add(header);
    this.secrets.add(header.slice('Basic '.length));
    return header;
  }

  private credentials(): Promise<CredentialLookup> {
    if (this.lookup === undefined) {
      const given = this.options.credentials;
      this.lookup =
        given !== undefined
          ? Promise.resolve({ credentials: given ?? undefined, configPath: this.options.dockerConfigPath ?? dockerConfigPath(), helper: undefined })
          : lookupCredentials(this.registry, this.options.dockerConfigPath === undefined ? {} : { configPath: this.options.dockerConfigPath });
      this.lookup
        .then((found) => {
          if (found.credentials !== undefined) this.secrets.add(found.credentials.password);
        })
        .catch(() => undefined);
    }
    return this.lookup;
  }

  /** Fetches, following redirects by hand: Authorization goes only to `authOrigin` (the registry's own, unless told). */
  private async fetchFollowing(call: Call, authorization: string | undefined, authOrigin = this.origin): Promise<Answer> {
    let url = new URL(call.url);
    let method = call.method;
    let body = call.body;
    for (let hop = 0; ; hop += 1) {
      const headers: Record<string, string> = { 'user-agent': USER_AGENT, ...call.headers };
      if (authorization !== undefined && url.origin === authOrigin) headers.authorization = authorization;
      if (body === undefined) delete headers['content-type'];
      let response: Response;
      try {
        const init: RequestInit = { method, headers, redirect: 'manual', signal: call.signal };
        const made = body?.();
        if (made !== undefined) {
          init.body = made;
          init.duplex = 'half';
        }
        response = await fetch(url, init);
      } catch (error) {
        throw this.networkError(call, error);
      }
      this.logger.debug({ method, url: `${url.origin}${url.pathname}`, status: response.status }, 'registry request');
      const location = response.headers.get('location');
      if (![301, 302, 303, 307, 308].includes(response.status) || location === null) return { response, url: url.href };
      await discard(response);
      if (hop >= MAX_REDIRECTS) {
        throw new WarmvmError('E_REGISTRY', `${call.what} failed: the registry ${this.registry} redirected it more than ${MAX_REDIRECTS} times`, {
          hint: "the registry's redirects loop: ask its operator",
        });
      }
      const next = new URL(location, url);
      if (!allowedUrl(next)) throw this.plainHttpError(call, next);
      if (response.status === 303 || ((response.status === 301 || response.status === 302) && method === 'POST')) {
        method = 'GET';
        body = undefined;
      }
      url = next;
    }
  }

  private networkError(call: Call, error: unknown): WarmvmError {
    if (call.signal?.aborted) return abortError(call.signal, call.what);
    const code = systemCode(error);
    const host = new URL(call.url).host;
    // A system error by its code (ECONNREFUSED); undici's own (UND_ERR_SOCKET) by what it says ("other side closed").
    const why = code !== undefined && !code.startsWith('UND_ERR') ? code : innermostMessage(error);
    let hint = `check that ${host} is up and reachable from here, then try again`;
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') hint = `check the host name ${new URL(call.url).hostname}: it does not resolve here`;
    else if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
      hint = `the certificate ${host} showed is for another name: reach the registry by a name its certificate holds`;
      return new WarmvmError('E_REGISTRY_UNREACHABLE', `could not reach ${host} for ${call.what}: its certificate is for another name (${code})`, { hint, cause: error });
    } else if (code !== undefined && CERTIFICATE_UNTRUSTED.test(code)) {
      hint = `if the registry uses a private CA, give it to warmvm: NODE_EXTRA_CA_CERTS=/path/to/ca.pem warmvm …`;
      return new WarmvmError('E_REGISTRY_UNREACHABLE', `could not reach ${host} for ${call.what}: its certificate is not trusted here (${code})`, { hint, cause: error });
    } else if (code !== undefined && /SSL|TLS|CERT|EPROTO/.test(code)) {
      hint = `${host} did not answer with valid HTTPS (warmvm uses plain HTTP only for a registry on this machine: localhost, 127.0.0.0/8, ::1)`;
    }
    return new WarmvmError('E_REGISTRY_UNREACHABLE', `could not reach ${host} for ${call.what} (${this.scrub(why)})`, { hint, cause: error });
  }

  private plainHttpError(call: Call, url: URL): WarmvmError {
    return new WarmvmError('E_REGISTRY', `${call.what} was refused: the registry ${this.registry} sent it on to ${url.protocol}//${url.host}, which is not HTTPS`, {
      hint: 'warmvm uses plain HTTP only for this machine (localhost, 127.0.0.0/8, ::1): the registry must use HTTPS for everything else',
    });
  }

  private async authError(detail: string): Promise<WarmvmError> {
    const { credentials, configPath, helper } = await this.credentials();
    if (credentials !== undefined) {
      return new WarmvmError('E_REGISTRY_AUTH', `the registry ${this.registry} refused the credentials for ${this.repository} (${detail})`, {
        hint: `check the user and password for ${this.registry} in ${configPath} (docker login ${this.registry}), and that the user may push and pull ${this.repository}`,
      });
    }
    const hint =
      helper !== undefined
        ? `${configPath} leaves the credentials for ${this.registry} to the credential helper docker-credential-${helper}, which warmvm does not run: log in with a config that keeps them in the file (DOCKER_CONFIG=$HOME/.warmvm-docker docker login ${this.registry}) and run warmvm with that DOCKER_CONFIG`
        : `log in first: docker login ${this.registry} (warmvm reads the credentials from ${configPath})`;
    return new WarmvmError('E_REGISTRY_AUTH', `the registry ${this.registry} wants credentials for ${this.repository} (${detail}), and ${configPath} has none for it`, { hint });
  }

  private async httpError(call: Call, response: Response): Promise<WarmvmError> {
    return this.statusError(call, response.status, await this.describeResponse(response));
  }

  private statusError(call: Call, status: number, detail: string): WarmvmError {
    if (status === 403) {
      return new WarmvmError('E_REGISTRY_AUTH', `the registry ${this.registry} denied ${call.what} (${detail})`, {
        hint: `check that the user in the credentials for ${this.registry} may push and pull ${this.repository}`,
      });
    }
    let code: RegistryCode = 'E_REGISTRY';
    let hint = `see the registry's answer above; try again, or ask the operator of ${this.registry}`;
    if (status === 404 && (call.method === 'GET' || call.method === 'HEAD')) {
      code = 'E_REGISTRY_MISSING';
      hint = `check the repository and the tag or digest: ${this.name} has no such thing`;
    } else if (status === 429) hint = `${this.registry} limits how many requests it takes: wait, then try again`;
    else if (status === 413) hint = `${this.registry} takes nothing this large: check its upload limits`;
    else if (status >= 500) hint = `${this.registry} failed on its side: try again later`;
    return new WarmvmError(code, `${call.what} failed: the registry ${this.registry} answered ${detail}`, { hint });
  }

  /** `HTTP 404 BLOB_UNKNOWN: blob unknown to registry (sha256:…)`: the status and the registry's JSON errors, secrets scrubbed. */
  private async describeResponse(response: Response): Promise<string> {
    let text = '';
    try {
      text = (await readBody(response, MAX_SMALL_BODY, () => new Error('too large'))).toString('utf8');
    } catch {
      // The status alone says enough.
    }
    let parts: string[] = [];
    try {
      const parsed = JSON.parse(text) as { errors?: unknown; error?: unknown; details?: unknown };
      if (Array.isArray(parsed.errors)) {
        parts = parsed.errors.map((entry: { code?: unknown; message?: unknown; detail?: unknown }) => {
          const detail = typeof entry.detail === 'string' && entry.detail !== '' ? ` (${truncate(entry.detail, 120)})` : '';
          return `${String(entry.code ?? 'ERROR')}: ${String(entry.message ?? '')}${detail}`;
        });
      } else if (typeof parsed.error === 'string' || typeof parsed.details === 'string') {
        parts = [[parsed.error, parsed.details].filter((part) => typeof part === 'string').join(': ')];
      }
    } catch {
      const plain = text
        .replace(/<[^>]*>/g, ' ')
        .replace(/\s+/g, ' ')
        .trim();
      if (plain !== '') parts = [truncate(plain, 160)];
    }
    const status = `HTTP ${response.status}${response.statusText === '' ? '' : ` ${response.statusText}`}`;
    return this.scrub(parts.length === 0 ? status : `${status}, ${truncate(parts.join('; '), 400)}`);
  }

  private scrub(text: string): string {
    return redactValues(text, this.secrets);
  }
}

/** A Retry-After in seconds as milliseconds; an HTTP date or anything else is left to the caller's own pause. */
function retryAfterMs(value: string | null): number | undefined {
  return value !== null && /^\d+$/.test(value.trim()) ? Number(value.trim()) * 1000 : undefined;
}

/** Reads a file's bytes `from`..`to` (inclusive) as they are sent, reporting how many have been read. */
async function* readRange(file: string, from: number, to: number, onRead: (read: number) => void, signal: AbortSignal | undefined): AsyncGenerator<Uint8Array> {
  let read = 0;
  const stream = createReadStream(file, { start: from, end: to, highWaterMark: 1 << 20, ...(signal === undefined ? {} : { signal }) });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    read += chunk.length;
    onRead(read);
    yield chunk;
  }
  if (read !== to - from + 1) throw new Error(`${file} became shorter while it was sent`);
}

/** Hashes a partial file's first `bytes` into `hash`, so the download can continue after them. */
async function hashPrefix(handle: FileHandle, bytes: number, hash: Hash, signal: AbortSignal | undefined, what: string): Promise<void> {
  const buffer = Buffer.allocUnsafe(Math.min(bytes, 4 << 20));
  let position = 0;
  while (position < bytes) {
    throwIfAborted(signal, what);
    const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, bytes - position), position);
    if (bytesRead === 0) throw new Error('the partial file became shorter while it was hashed');
    hash.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
}

async function readBody(response: Response, maxBytes: number, tooBig: () => Error): Promise<Buffer> {
  if (response.body === null) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    total += chunk.length;
    if (total > maxBytes) {
      await response.body.cancel().catch(() => undefined);
      throw tooBig();
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

/** Lets a response's connection go back to the pool. */
async function discard(response: Response): Promise<void> {
  await response.body?.cancel().catch(() => undefined);
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
}

function sha256(data: Buffer): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

function mediaTypeOf(response: Response, body: Buffer): string {
  const header = response.headers.get('content-type')?.split(';')[0]?.trim();
  if (header !== undefined && header !== '' && header !== 'application/json' && header !== 'application/octet-stream') return header;
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { mediaType?: unknown };
    if (typeof parsed.mediaType === 'string') return parsed.mediaType;
  } catch {
    // Not JSON: the header is all there is.
  }
  return header ?? '';
}

/** `WWW-Authenticate: Bearer realm="…",service="…",scope="…"` → scheme (lowercase) and parameters. */
export function parseChallenge(header: string | null): Challenge | undefined {
  if (header === null) return undefined;
  const match = /^\s*([A-Za-z][A-Za-z0-9_-]*)\s*(.*)$/s.exec(header);
  if (match === null) return undefined;
  const params: Record<string, string> = {};
  const pattern = /([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  for (const param of (match[2] ?? '').matchAll(pattern)) {
    const key = (param[1] as string).toLowerCase();
    if (!(key in params)) params[key] = param[2] !== undefined ? param[2].replace(/\\(.)/g, '$1') : (param[3] ?? '');
  }
  return { scheme: (match[1] as string).toLowerCase(), params };
}

function innermostMessage(error: unknown): string {
  let current: unknown = error;
  let message = String(error);
  for (let depth = 0; depth < 5 && current instanceof Error; depth += 1) {
    message = current.message;
    current = current.cause;
  }
  return message;
}

/** The system error's code (ECONNREFUSED, ENOTFOUND, ERR_SSL_…) somewhere in an error's causes. */
function systemCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current !== undefined && current !== null; depth += 1) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '' && !code.startsWith('UND_ERR_ABORTED')) return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** All of `buffer` at `position`: a positional write may write less than asked. */
async function writeAll(handle: FileHandle, buffer: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buffer.length) done += (await handle.write(buffer, done, buffer.length - done, position + done)).bytesWritten;
}
