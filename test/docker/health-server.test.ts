import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isProcessAlive } from '../../adapters/support/process-alive.js';
import { projectRoot } from '../../adapters/support/project-root.js';
import { hostBusybox } from './busybox.js';

/**
 * health-server (and rotate-secrets driving it) on the host's /bin/sh with a real busybox httpd
 * on a free port, everything under a temporary folder.
 */

const DOCKER = join(projectRoot(), 'docker');
const busybox = await hostBusybox();
const PLACEHOLDERS = `API_KEY=${'0'.repeat(64)}\n`;

let dir: string;
let port: number;
let env: Record<string, string>;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warmvm-health-'));
  port = await freePort();
  env = {
    WARMVM_SECRETS_FILE: join(dir, 'secrets.env'),
    WARMVM_STATE_DIR: join(dir, 'state'),
    WARMVM_HTTP_PORT: String(port),
    WARMVM_HTTP_ADDR: '127.0.0.1',
    WARMVM_BUSYBOX: busybox.path ?? 'busybox',
  };
});

afterEach(async () => {
  await run('health-server', ['stop']);
  await rm(dir, { recursive: true, force: true });
});

/** A script of docker/, by its own #!/bin/sh (the host's dash), or with `busybox` by busybox's sh as in the guests (whose read can time out). */
async function run(
  script: string,
  args: string[],
  input?: string,
  options: { busybox?: boolean; env?: Record<string, string> } = {},
): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const [file, argv] = options.busybox ? [busybox.path as string, ['sh', join(DOCKER, script), ...args]] : [join(DOCKER, script), args];
  const result = await execa(file, argv, { env: { ...env, ...options.env }, input: input ?? '', reject: false, timeout: 20_000 });
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}

async function get(path: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5000) });
  return { status: response.status, body: await response.text() };
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

async function serverPid(): Promise<number> {
  return Number((await readFile(join(dir, 'state', 'httpd.pid'), 'utf8')).trim());
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port: found } = server.address() as AddressInfo;
      server.close(() => resolve(found));
    });
  });
}

describe.skipIf(busybox.path === undefined)(`health-server (busybox: ${busybox.path ?? (busybox as { reason: string }).reason})`, () => {
  it('starts with placeholder secrets and answers /health with 200 and /secret-fingerprint with their sha256', async () => {
    const started = await run('health-server', ['start']);
    expect(started.exitCode, started.stderr).toBe(0);

    const health = await get('/health');
    expect(health.status).toBe(200);
    expect(health.body.trim()).toBe('ok');

    const secrets = await readFile(env.WARMVM_SECRETS_FILE!, 'utf8');
    expect(secrets).toBe(PLACEHOLDERS);
    expect((await stat(env.WARMVM_SECRETS_FILE!)).mode & 0o777).toBe(0o600);
    const fingerprint = await get('/secret-fingerprint');
    expect(fingerprint.status).toBe(200);
    expect(fingerprint.body).toBe(sha256(secrets));
    expect(fingerprint.body).not.toContain('API_KEY');
  });

  it('serves the fingerprint of an existing secrets file, and nothing else of it', async () => {
    const secrets = `API_KEY=${'ab'.repeat(32)}\nDB_PASSWORD=${'cd'.repeat(16)}\n`;
    await writeFile(env.WARMVM_SECRETS_FILE!, secrets, { mode: 0o600 });
    expect((await run('health-server', ['start'])).exitCode).toBe(0);
    expect((await get('/secret-fingerprint')).body).toBe(sha256(secrets));
    expect((await get('/secrets.env')).status).toBe(404);
    expect((await get('/../secrets.env')).status).not.toBe(200);
  });

  it('rotate-secrets changes the fingerprint and replaces the server process', async () => {
    expect((await run('health-server', ['start'])).exitCode).toBe(0);
    const before = await get('/secret-fingerprint');
    const oldPid = await serverPid();

    const input = `API_KEY=${'e1'.repeat(32)}\n`;
    const rotated = await run('rotate-secrets', [], input);
    expect(rotated.exitCode, rotated.stderr).toBe(0);

    const after = await get('/secret-fingerprint');
    expect(after.body).toBe(sha256(input));
    expect(after.body).not.toBe(before.body);
    expect(await serverPid()).not.toBe(oldPid);
    expect(await isProcessAlive(oldPid)).toBe(false);
    expect((await get('/health')).status).toBe(200);
  });

  it('a refused rotation leaves the server and its fingerprint as they were', async () => {
    expect((await run('health-server', ['start'])).exitCode).toBe(0);
    const pid = await serverPid();
    const refused = await run('rotate-secrets', [], 'API_KEY=not-hex\n');
    expect(refused.exitCode).toBe(2);
    expect((await get('/secret-fingerprint')).body).toBe(sha256(PLACEHOLDERS));
    expect(await serverPid()).toBe(pid);
  });

  it('restart leaves exactly one server: the old one is gone before the new one binds', async () => {
    expect((await run('health-server', ['start'])).exitCode).toBe(0);
    const pids = [await serverPid()];
    for (let round = 0; round < 3; round += 1) {
      const restarted = await run('health-server', ['restart']);
      expect(restarted.exitCode, restarted.stderr).toBe(0);
      pids.push(await serverPid());
    }
    expect(new Set(pids).size).toBe(4);
    const alive = await Promise.all(pids.map((pid) => isProcessAlive(pid)));
    expect(alive).toEqual([false, false, false, true]);
    expect((await get('/health')).status).toBe(200);
  });

  it('stop frees the port and forgets the pid', async () => {
    expect((await run('health-server', ['start'])).exitCode).toBe(0);
    const pid = await serverPid();
    expect((await run('health-server', ['stop'])).exitCode).toBe(0);
    expect(await isProcessAlive(pid)).toBe(false);
    await expect(get('/health')).rejects.toThrow();
    await expect(stat(join(dir, 'state', 'httpd.pid'))).rejects.toThrow();
    // The port is really free: something else can bind it.
    const other = createServer();
    await new Promise<void>((resolve, reject) => {
      other.once('error', reject);
      other.listen(port, '127.0.0.1', () => resolve());
    });
    await new Promise((resolve) => other.close(resolve));
  });

  it('refuses to start while another process holds the port, rather than report its answers as ours', async () => {
    const squatter: Server = createServer((socket) => socket.end('HTTP/1.0 200 OK\r\n\r\nnot ours'));
    await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', () => resolve()));
    try {
      const started = await run('health-server', ['start']);
      expect(started.exitCode).toBe(1);
      expect(started.stderr).toContain(`port ${port} is held by another process`);
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
  }, 15_000);

  it('rejects an unknown command with a usage line', async () => {
    const result = await run('health-server', ['bogus']);
    expect(result.exitCode).toBe(64);
    expect(result.stderr).toContain('usage: health-server');
  });
  it("the container's entrypoint supervises the server: serves, restarts it for each rotation (one server at a time), and on SIGTERM stops it and frees the port", async () => {
    const entrypoint = execa(join(DOCKER, 'entrypoint'), [], { env, reject: false, stdin: 'ignore' });
    try {
      // Up once it says so: a rotation racing its own start would stop the server it waits for.
      let said = '';
      entrypoint.stdout?.on('data', (chunk: Buffer) => (said += chunk.toString()));
      await waitFor(async () => said.includes('health-server: up'));
      expect((await get('/health')).status).toBe(200);
      const pids = [await serverPid()];
      for (const value of ['a1', 'b2']) {
        const input = `API_KEY=${value.repeat(32)}\n`;
        const rotated = await run('rotate-secrets', [], input, { busybox: true });
        expect(rotated.exitCode, rotated.stderr).toBe(0);
        expect((await get('/secret-fingerprint')).body).toBe(sha256(input));
        pids.push(await serverPid());
      }
      expect(await Promise.all(pids.map((pid) => isProcessAlive(pid)))).toEqual([false, false, true]);
      entrypoint.kill('SIGTERM');
      const ended = await entrypoint;
      expect(ended.exitCode, ended.stderr).toBe(0);
      expect(await isProcessAlive(pids[2] as number)).toBe(false);
      // The port is free: something else can listen on it at once.
      const next = createServer();
      await new Promise<void>((resolve, reject) => next.once('error', reject).listen(port, '127.0.0.1', () => resolve()));
      await new Promise((resolve) => next.close(resolve));
    } finally {
      entrypoint.kill('SIGKILL');
    }
  });
});

async function parentOf(pid: number): Promise<number> {
  // /proc/PID/stat: "pid (comm) state ppid ..."; comm has no ")" here.
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

describe.skipIf(busybox.path === undefined)('health-server supervise (under busybox sh)', () => {
  let supervisor: ReturnType<typeof execa> | undefined;
  let restarts: string;
  let stub: string;
  const supervisorPidFile = () => join(dir, 'state', 'supervisor.pid');

  beforeEach(async () => {
    restarts = join(dir, 'restarts');
    stub = join(dir, 'health-server-stub');
    await writeFile(stub, `#!/bin/sh\necho "$1" >> '${restarts}'\n`, { mode: 0o755 });
    supervisor = execa(busybox.path as string, ['sh', join(DOCKER, 'health-server'), 'supervise'], { env, reject: false, stdin: 'ignore' });
    await waitFor(async () => (await stat(supervisorPidFile()).catch(() => undefined)) !== undefined);
  });

  afterEach(async () => {
    // SIGTERM: the supervisor stops its listener and server (SIGKILL would leave both behind).
    supervisor?.kill('SIGTERM');
    await supervisor;
  });

  const supervisorPid = async () => Number((await readFile(supervisorPidFile(), 'utf8')).trim());

  it('serves as its own child; a rotate-secrets has it restart the server, and runs no health-server itself', async () => {
    const before = await serverPid();
    expect(await parentOf(before)).toBe(await supervisorPid());
    expect((await get('/secret-fingerprint')).body).toBe(sha256(PLACEHOLDERS));
    for (const value of ['a1', 'b2']) {
      const input = `API_KEY=${value.repeat(32)}\n`;
      const rotated = await run('rotate-secrets', [], input, { busybox: true, env: { WARMVM_HEALTH_SERVER: stub } });
      expect(rotated.exitCode, rotated.stderr).toBe(0);
      // Answered once the new server listens: the first request after the hook gets the new fingerprint.
      expect((await get('/secret-fingerprint')).body).toBe(sha256(input));
    }
    const after = await serverPid();
    expect(after).not.toBe(before);
    expect(await isProcessAlive(before)).toBe(false);
    expect(await parentOf(after)).toBe(await supervisorPid());
    expect(await readFile(restarts, 'utf8').catch(() => '')).toBe('');
  });

  it("refuses, naming the fix, in a shell whose read cannot time out (the host's dash), and leaves the server alone", async () => {
    const before = await serverPid();
    env.WARMVM_HEALTH_SERVER = stub;
    const viaDash = await run('rotate-secrets', [], `API_KEY=${'d4'.repeat(32)}\n`);
    expect(viaDash.exitCode).toBe(1);
    expect(viaDash.stderr).toContain('busybox sh or bash');
    expect(await readFile(restarts, 'utf8').catch(() => '')).toBe('');
    expect(await serverPid()).toBe(before);
  });

  it('answers a rotate-secrets from outside its pid namespace alike: the request needs no pid', async () => {
    // The Debian guest's hook runs in the VM, the supervisor in the container: only the fifos are shared.
    await rm(supervisorPidFile());
    await writeFile(supervisorPidFile(), '1\n');
    const input = `API_KEY=${'e5'.repeat(32)}\n`;
    const rotated = await run('rotate-secrets', [], input, { busybox: true, env: { WARMVM_HEALTH_SERVER: stub } });
    expect(rotated.exitCode, rotated.stderr).toBe(0);
    expect((await get('/secret-fingerprint')).body).toBe(sha256(input));
  });

  it('starts the server again when it dies, and on SIGTERM stops it, frees the port and forgets its pid', async () => {
    const first = await serverPid();
    process.kill(first, 'SIGKILL');
    await waitFor(async () => (await serverPid().catch(() => first)) !== first && (await get('/health').catch(() => undefined))?.status === 200);
    const second = await serverPid();
    expect(await parentOf(second)).toBe(await supervisorPid());
    supervisor?.kill('SIGTERM');
    const ended = await supervisor;
    expect(ended?.exitCode, ended?.stderr?.toString()).toBe(0);
    expect(await isProcessAlive(second)).toBe(false);
    await expect(stat(supervisorPidFile())).rejects.toThrow();
    await expect(get('/health')).rejects.toThrow();
  });
});

async function waitFor(check: () => Promise<boolean>, boundMs = 10_000): Promise<void> {
  const deadline = Date.now() + boundMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not true within ${boundMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
