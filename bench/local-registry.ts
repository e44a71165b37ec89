/**
 * A throwaway OCI registry for the benches: Debian's `docker-registry serve CONFIG.yml` (CNCF
 * distribution 2.8) on 127.0.0.1 at a free port, its storage in a temp folder under `parent`.
 * Resolves once `/v2/` answers; `stop()` kills it and deletes the folder (safe to call twice).
 * (test/helpers/registry.ts is the tests' one, with a counting proxy in front; bench/ cannot import test/.)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';

export interface LocalRegistry {
  /** `127.0.0.1:PORT`, as a reference's host part. */
  registry: string;
  stop(): Promise<void>;
}

const READY_MS = 20_000;

export async function startLocalRegistry(parent: string): Promise<LocalRegistry> {
  const dir = await mkdtemp(join(parent, 'registry-'));
  let lastError: unknown;
  // A free port can be taken between finding and binding it: try a few.
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const port = await freePort();
    const config = join(dir, 'config.yml');
    const yaml = ['version: 0.1', 'log:', '  level: warn', '  accesslog:', '    disabled: true', 'storage:', '  filesystem:', `    rootdirectory: ${join(dir, 'storage')}`];
    await writeFile(config, [...yaml, 'http:', `  addr: 127.0.0.1:${port}`, ''].join('\n'));
    const log = openSync(join(dir, 'registry.log'), 'a');
    const child = spawn('/usr/bin/docker-registry', ['serve', config], { stdio: ['ignore', log, log] });
    closeSync(log);
    // The last resort when the bench dies of an uncaught error: no registry outlives it.
    const onExit = (): void => void child.kill('SIGKILL');
    process.once('exit', onExit);
    const stop = async (): Promise<void> => {
      await killChild(child);
      process.removeListener('exit', onExit);
      await rm(dir, { recursive: true, force: true });
    };
    try {
      await waitReady(child, port, join(dir, 'registry.log'));
      let stopped: Promise<void> | undefined;
      return { registry: `127.0.0.1:${port}`, stop: () => (stopped ??= stop()) };
    } catch (error) {
      lastError = error;
      await killChild(child);
      process.removeListener('exit', onExit);
    }
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError;
}

async function waitReady(child: ChildProcess, port: number, logFile: string): Promise<void> {
  const deadline = Date.now() + READY_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const log = await readFile(logFile, 'utf8').catch(() => '');
      throw new Error(`docker-registry exited (${child.exitCode ?? child.signalCode}) before it answered:\n${log.slice(-2000)}`);
    }
    const status = await fetch(`http://127.0.0.1:${port}/v2/`).then(
      (response) => response.status,
      () => 0,
    );
    if (status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`docker-registry did not answer on 127.0.0.1:${port}/v2/ within ${READY_MS} ms`);
}

/** SIGTERM, then SIGKILL after 5 s; resolves once it has exited (the tests' registries use it too). */
export async function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/** A TCP port free on `host` now (another may take it before it is bound: callers try again). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
