import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { QgaClient } from '../../../adapters/qemu/protocol/qga-client.js';
import { rotateSecrets } from '../../../adapters/vm/rotation.js';
import { caught, useCleanups } from '../../helpers/client-harness.js';
import { startFakeQgaServer, type FakeQga, type FakeQgaOptions } from '../../helpers/fake-qga-server.js';

/** rotateSecrets against a fake agent on a real socket: what it sends, in which order, and what it keeps. */

const { keep } = useCleanups();
let dir: string;
let secretsFile: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warmvm-rotation-'));
  secretsFile = join(dir, 'secrets.env');
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function agent(options: FakeQgaOptions): Promise<{ server: FakeQga; qga: QgaClient }> {
  const server = keep(await startFakeQgaServer(options));
  const qga = keep(await QgaClient.connect(server.socketPath, { timeoutMs: 2000 }));
  return { server, qga };
}

const spec = { command: '/usr/local/bin/rotate-secrets', names: ['API_KEY', 'DB_PASSWORD'] };

describe('rotateSecrets', () => {
  it('sets the clock once the hook exited, then keeps the secrets it sent, mode 0600', async () => {
    const { server, qga } = await agent({ exec: () => ({ pollsBeforeExit: 2 }) });
    const result = await rotateSecrets(qga, spec, { secretsFile, timeoutMs: 5000 });
    expect(result).toMatchObject({ secrets: 2, exitCode: 0 });
    expect(await result.clock).toBe(true);
    expect(server.requests.map((request) => request.execute)).toEqual(['guest-sync-delimited', 'guest-exec', ...Array(3).fill('guest-exec-status'), 'guest-set-time']);
    const sent = server.execCalls[0]?.input?.toString();
    expect(await readFile(secretsFile, 'utf8')).toBe(sent);
    expect(sent).toMatch(/^API_KEY=[0-9a-f]{64}\nDB_PASSWORD=[0-9a-f]{64}\n$/);
    expect((await stat(secretsFile)).mode & 0o777).toBe(0o600);
  });

  it("does not wait for the clock's answer (util-linux's hwclock holds it up to a second)", async () => {
    let answer: (() => void) | undefined;
    const { qga } = await agent({
      commands: {
        'guest-set-time': (request, peer) => {
          answer = () => peer.reply(request, {});
        },
      },
    });
    const result = await rotateSecrets(qga, spec, { secretsFile, timeoutMs: 5000 });
    // Returned while the agent holds the clock's answer: the secrets are already kept.
    expect(await readFile(secretsFile, 'utf8')).toMatch(/^API_KEY=/);
    await vi.waitFor(() => expect(answer).toBeDefined());
    expect(await Promise.race([result.clock, Promise.resolve('pending')])).toBe('pending');
    answer?.();
    expect(await result.clock).toBe(true);
  });

  it('reports a clock the agent refuses to set, and still succeeds', async () => {
    const { qga } = await agent({ commands: { 'guest-set-time': (request, peer) => peer.fail(request, 'CommandNotFound', 'blocked by the agent') } });
    const result = await rotateSecrets(qga, spec, { secretsFile, timeoutMs: 5000 });
    expect(result.exitCode).toBe(0);
    expect(await result.clock).toBe(false);
  });

  it('says nothing of the clock when the connection ends before its answer', async () => {
    const { qga } = await agent({ commands: { 'guest-set-time': () => undefined } });
    const result = await rotateSecrets(qga, spec, { secretsFile, timeoutMs: 5000 });
    await qga.close();
    expect(await result.clock).toBeUndefined();
  });

  it('a hook that fails keeps no secrets and says how it ended, with the secrets taken out of its stderr', async () => {
    let input = '';
    const { qga } = await agent({
      exec: (call) => {
        input = call.input?.toString() ?? '';
        // A careless hook echoing a value back: it must not reach the error.
        return { exitcode: 2, stderr: `line 2: bad value ${input.split('\n')[1]?.split('=')[1]}\n` };
      },
    });
    const error = (await caught(rotateSecrets(qga, spec, { secretsFile, timeoutMs: 5000 }))) as Error & { code?: string };
    expect(error.code).toBe('E_ROTATE');
    expect(error.message).toContain('exited 2');
    const secret = input.split('\n')[1]?.split('=')[1] as string;
    expect(secret).toMatch(/^[0-9a-f]{64}$/);
    expect(error.message).not.toContain(secret);
    await expect(stat(secretsFile)).rejects.toThrow();
  });
});
