import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, createSign, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll } from 'vitest';
import type { Digest } from '../../adapters/oci/types.js';
import { freePort, killChild } from '../../bench/local-registry.js';

/*
 * A real OCI registry for the tests: Debian's docker-registry (CNCF distribution 2.8.2) on
 * 127.0.0.1 with its storage in a temp folder, optionally behind htpasswd (basic) or token
 * (Bearer) authentication, and a small HTTP proxy in front of it that counts the response body
 * bytes it relays. The address handed out is the proxy's, so every byte a client pulls is counted.
 */

/** An IPv4 address of this machine that is not loopback, if it has one. */
export function externalAddress(): string | undefined {
  return Object.values(networkInterfaces())
    .flat()
    .find((entry) => entry !== undefined && entry.family === 'IPv4' && !entry.internal)?.address;
}

/** The OCI digest of some bytes. */
export function sha256Digest(data: Buffer): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export interface RelayedRequest {
  method: string;
  /** Path and query, as sent. */
  path: string;
  status: number;
  /** Response body bytes relayed. */
  bytes: number;
  /** Whether the request carried an Authorization header (never its value). */
  authorized: boolean;
}

export interface TestRegistry {
  /** `127.0.0.1:PORT` of the counting proxy. */
  registry: string;
  /** The registry's `storage.filesystem.rootdirectory`. */
  storageDir: string;
  /** Response body bytes relayed so far (by the proxy and its storage relay). */
  servedBytes(): number;
  /** Every request relayed so far, in order of their answers. */
  requests(): RelayedRequest[];
  /**
   * Changes what the proxy does from now on: `dropRange` strips Range from requests (a registry
   * that ignores it); `redirectBlobs` answers blob GETs with a 307 to a "storage" relay on another
   * origin (`localhost:PORT`), which serves them as a presigned URL would: without asking for credentials;
   * `throttleBytesPerSecond` slows the bodies it relays (also those under way: `{}` lets them run again).
   */
  setProxy(behaviour: ProxyBehaviour): void;
  /** The requests the storage relay served (blob GETs redirected to it). */
  storageRequests(): RelayedRequest[];
  /** How many tokens the token service handed out (token auth only). */
  tokensIssued(): number;
  /** Where the registry keeps a blob's bytes. */
  blobDataPath(digest: string): string;
  /** The registry's own log (stdout and stderr). */
  log(): Promise<string>;
  /** Kills the registry, closes the proxy (and token service), deletes the storage. Safe to call twice. */
  stop(): Promise<void>;
}

export interface ProxyBehaviour {
  dropRange?: boolean;
  redirectBlobs?: boolean;
  /** Relays each answer's body at most this fast (bytes per second, per answer), to catch a transfer midway. */
  throttleBytesPerSecond?: number;
  /** Answers the next `count` GET and HEAD requests with `status` itself, as a registry behind a busy load balancer does. */
  failNext?: { status: number; count: number };
}

export interface TestRegistryOptions {
  /** `htpasswd`: basic auth; `token`: Bearer tokens from a token service of this helper, which takes the same user. */
  auth?: { kind: 'htpasswd' | 'token'; username: string; password: string };
}

const execFileAsync = promisify(execFile);
const READY_MS = 20_000;
const TOKEN_SERVICE = 'warmvm-test-registry';
const TOKEN_ISSUER = 'warmvm-test-issuer';

/** Starts a registry and its proxy; on any failure on the way, whatever had started is stopped again. */
export async function startRegistry(options: TestRegistryOptions = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'wvm-reg-'));
  const cleanups: (() => Promise<void>)[] = [async () => rm(dir, { recursive: true, force: true })];
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      // Last started, first stopped; every step runs even when one before it failed.
      const errors: unknown[] = [];
      for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => errors.push(error));
      if (errors.length > 0) throw errors[0];
    })());
  try {
    const storageDir = join(dir, 'storage');
    await mkdir(storageDir);
    const authConfig: string[] = [];
    let token: TokenService | undefined;
    if (options.auth?.kind === 'htpasswd') {
      const { stdout } = await execFileAsync('htpasswd', ['-Bbn', options.auth.username, options.auth.password]);
      await writeFile(join(dir, 'htpasswd'), stdout);
      authConfig.push('auth:', '  htpasswd:', '    realm: warmvm-test', `    path: ${join(dir, 'htpasswd')}`);
    } else if (options.auth?.kind === 'token') {
      token = await startTokenService(dir, options.auth.username, options.auth.password);
      cleanups.push(token.close);
      authConfig.push(
        'auth:',
        '  token:',
        `    realm: http://127.0.0.1:${token.port}/token`,
        `    service: ${TOKEN_SERVICE}`,
        `    issuer: ${TOKEN_ISSUER}`,
        `    rootcertbundle: ${token.certFile}`,
      );
    }

    const { child, port } = await spawnRegistry(dir, storageDir, authConfig);
    cleanups.push(() => killChild(child));
    // The storage relay stands in for the credentials a presigned URL carries.
    const storageAuth = options.auth === undefined ? undefined : `Basic ${Buffer.from(`${options.auth.username}:${options.auth.password}`).toString('base64')}`;
    const storage = await startProxy(port, { inject: storageAuth });
    cleanups.push(storage.close);
    const proxy = await startProxy(port, { storagePort: storage.port });
    cleanups.push(proxy.close);
    const registry = `127.0.0.1:${proxy.port}`;
    return {
      registry,
      storageDir,
      servedBytes: () => proxy.served + storage.served,
      requests: () => [...proxy.relayed],
      setProxy: (behaviour) => {
        proxy.behaviour = { ...behaviour, ...(behaviour.failNext ? { failNext: { ...behaviour.failNext } } : {}) };
      },
      storageRequests: () => [...storage.relayed],
      tokensIssued: () => token?.issued ?? 0,
      blobDataPath: (digest: string) => {
        const hex = digest.replace(/^sha256:/, '');
        return join(storageDir, 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
      },
      log: () => readFile(join(dir, 'registry.log'), 'utf8'),
      stop,
    };
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}

/** Registries started through this are stopped in afterAll, whatever the tests did. */
export function useRegistries(): (options?: TestRegistryOptions) => Promise<TestRegistry> {
  const started: TestRegistry[] = [];
  afterAll(async () => {
    const results = await Promise.allSettled(started.splice(0).map((one) => one.stop()));
    const failed = results.find((result) => result.status === 'rejected');
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
  });
  return async (options) => {
    const one = await startRegistry(options);
    started.push(one);
    return one;
  };
}

/** Writes `config.json` into `dir` (a test sets DOCKER_CONFIG to it, or passes the file's path); returns the file's path. */
export async function writeDockerConfig(dir: string, config: unknown): Promise<string> {
  const file = join(dir, 'config.json');
  await writeFile(file, JSON.stringify(config, null, 2), { mode: 0o600 });
  return file;
}

/** An `auths` entry as `docker login` writes it: base64 of `user:password`. */
export function dockerAuth(username: string, password: string): { auth: string } {
  return { auth: Buffer.from(`${username}:${password}`).toString('base64') };
}

async function spawnRegistry(dir: string, storageDir: string, authConfig: string[]): Promise<{ child: ChildProcess; port: number }> {
  // A free port can be taken by someone else between finding and binding it: try a few.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const port = await freePort();
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
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      ...authConfig,
      '',
    ].join('\n');
    await writeFile(configFile, config);
    const log = createWriteStream(join(dir, 'registry.log'), { flags: 'a' });
    const child = spawn('docker-registry', ['serve', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    // Two sources into one file: it is closed once both have closed.
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    child.once('close', () => log.end());
    try {
      await waitReady(child, port, dir);
      return { child, port };
    } catch (error) {
      lastError = error;
      await killChild(child);
    }
  }
  throw lastError;
}

async function waitReady(child: ChildProcess, port: number, dir: string): Promise<void> {
  const exited = new Promise<never>((_, reject) => {
    child.once('error', reject);
    child.once('exit', async (code, signal) => {
      const log = await readFile(join(dir, 'registry.log'), 'utf8').catch(() => '');
      reject(new Error(`docker-registry exited (${code ?? signal}) before it answered:\n${log.slice(-2000)}`));
    });
  });
  exited.catch(() => undefined);
  const deadline = Date.now() + READY_MS;
  while (Date.now() < deadline) {
    const answer = await Promise.race([
      fetch(`http://127.0.0.1:${port}/v2/`).then(
        (response) => response.status,
        () => 0,
      ),
      exited,
    ]);
    if (answer === 200 || answer === 401) return;
    await Promise.race([new Promise((resolve) => setTimeout(resolve, 50)), exited]);
  }
  throw new Error(`docker-registry did not answer on 127.0.0.1:${port}/v2/ within ${READY_MS} ms`);
}

interface Proxy {
  port: number;
  served: number;
  relayed: RelayedRequest[];
  behaviour: ProxyBehaviour;
  close: () => Promise<void>;
}

/**
 * Relays every request to the registry unchanged (its Host too, so the registry's Locations name
 * the proxy) and counts the body bytes of the answers; its `behaviour` changes that.
 */
async function startProxy(upstreamPort: number, options: { inject?: string | undefined; storagePort?: number }): Promise<Proxy> {
  const agent = new http.Agent({ keepAlive: true });
  const proxy: Proxy = { port: 0, served: 0, relayed: [], behaviour: {}, close: async () => undefined };
  const server = http.createServer((request, response) => {
    const record = (status: number): RelayedRequest => {
      const relayed = { method: request.method ?? '', path: request.url ?? '', status, bytes: 0, authorized: request.headers.authorization !== undefined };
      proxy.relayed.push(relayed);
      return relayed;
    };
    const failing = proxy.behaviour.failNext;
    if (failing !== undefined && failing.count > 0 && (request.method === 'GET' || request.method === 'HEAD')) {
      failing.count -= 1;
      record(failing.status);
      response.writeHead(failing.status, { 'content-type': 'text/plain', 'content-length': '5', 'retry-after': '0' });
      response.end('busy\n');
      request.resume();
      return;
    }
    if (proxy.behaviour.redirectBlobs && options.storagePort !== undefined && request.method === 'GET' && /^\/v2\/.+\/blobs\/sha256:/.test(request.url ?? '')) {
      record(307);
      response.writeHead(307, { location: `http://localhost:${options.storagePort}${request.url}`, 'content-length': '0' });
      response.end();
      request.resume();
      return;
    }
    const headers = { ...request.headers };
    if (proxy.behaviour.dropRange) delete headers.range;
    if (options.inject !== undefined) headers.authorization = options.inject;
    const upstream = http.request({ host: '127.0.0.1', port: upstreamPort, method: request.method, path: request.url, headers, agent }, (answer) => {
      const relayed = record(answer.statusCode ?? 0);
      response.writeHead(answer.statusCode ?? 502, answer.statusMessage, answer.headers);
      const started = Date.now();
      answer.on('data', (chunk: Buffer) => {
        proxy.served += chunk.length;
        relayed.bytes += chunk.length;
        const drained = response.write(chunk);
        const rate = proxy.behaviour.throttleBytesPerSecond;
        const delay = rate === undefined || rate <= 0 ? 0 : (relayed.bytes / rate) * 1000 - (Date.now() - started);
        if (drained && delay <= 0) return;
        // Paused until the client has taken it and the rate allows more.
        answer.pause();
        let waits = (drained ? 0 : 1) + (delay > 0 ? 1 : 0);
        const resume = (): void => {
          waits -= 1;
          if (waits === 0) answer.resume();
        };
        if (!drained) response.once('drain', resume);
        if (delay > 0) setTimeout(resume, delay).unref();
      });
      answer.on('end', () => response.end());
      answer.on('error', () => response.destroy());
    });
    upstream.on('error', () => response.destroy());
    // A client that goes away (an aborted pull) takes the upstream request with it.
    response.on('close', () => upstream.destroy());
    request.pipe(upstream);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  proxy.port = typeof address === 'object' && address !== null ? address.port : 0;
  proxy.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    agent.destroy();
  };
  return proxy;
}

interface TokenService {
  port: number;
  certFile: string;
  issued: number;
  close: () => Promise<void>;
}

/**
 * A token service as distribution's token auth expects: it checks the basic credentials and hands
 * out an RS256 JWT, signed with a key whose self-signed certificate (named in the JWT's `x5c`) is the
 * registry's `rootcertbundle`, granting the scope asked for. Anonymous requests get a token with no access.
 */
async function startTokenService(dir: string, username: string, password: string): Promise<TokenService> {
  const keyFile = join(dir, 'token.key');
  const certFile = join(dir, 'token.crt');
  await execFileAsync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=warmvm-test-token']);
  const key = await readFile(keyFile, 'utf8');
  const certDer = (await readFile(certFile, 'utf8')).replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
  const expected = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  const service: TokenService = { port: 0, certFile, issued: 0, close: async () => undefined };
  const server = http.createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://127.0.0.1');
    const authorization = request.headers.authorization;
    if (authorization !== undefined && authorization !== expected) {
      response.writeHead(401, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'wrong user or password' }] }));
      return;
    }
    const access =
      authorization === undefined
        ? []
        : url.searchParams.getAll('scope').map((scope) => {
            const [type, ...rest] = scope.split(':');
            const actions = (rest.pop() ?? '').split(',');
            return { type, name: rest.join(':'), actions };
          });
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'RS256', x5c: [certDer] };
    const claims = {
      iss: TOKEN_ISSUER,
      sub: authorization === undefined ? '' : username,
      aud: url.searchParams.get('service'),
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomUUID(),
      access,
    };
    const body = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
    const signature = createSign('RSA-SHA256').update(body).sign(key).toString('base64url');
    service.issued += 1;
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ token: `${body}.${signature}`, expires_in: 300 }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  service.port = typeof address === 'object' && address !== null ? address.port : 0;
  service.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return service;
}

function base64url(text: string): string {
  return Buffer.from(text).toString('base64url');
}
