import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { WarmvmError } from '../../../../adapters/support/errors.js';
import { QgaConnectError, QgaDisconnectedError, QgaExecuteError, QgaTimeoutError } from '../../../../adapters/qemu/protocol/errors.js';
import { QgaClient } from '../../../../adapters/qemu/protocol/qga-client.js';
import { nextPollInterval } from '../../../../adapters/qemu/protocol/qga-exec.js';
import { caught, useCleanups, waitUntil } from '../../../helpers/client-harness.js';
import type { FakePeer, FakeRequest } from '../../../helpers/fake-json-lines-server.js';
import { startFakeQgaServer, type FakeQga, type FakeQgaOptions } from '../../../helpers/fake-qga-server.js';

const { defer, keep, socketDir } = useCleanups();
const fake = async (options: FakeQgaOptions = {}): Promise<FakeQga> => keep(await startFakeQgaServer(options));
const connect = async (server: FakeQga, opts: Parameters<typeof QgaClient.connect>[1] = {}): Promise<QgaClient> =>
  keep(await QgaClient.connect(server.socketPath, { timeoutMs: 2000, ...opts }));

const commandsSeen = (server: FakeQga): string[] => server.requests.map((request) => request.execute);
const SECRET = 'deadbeefcafe0123456789abcdef';
const SECRET_BASE64 = Buffer.from(SECRET).toString('base64');

describe('QgaClient.connect and sync', () => {
  it('syncs on connect: 0xFF first, then guest-sync-delimited with a random numeric id', async () => {
    const server = await fake();
    const client = await connect(server);
    expect(commandsSeen(server)).toEqual(['guest-sync-delimited']);
    const raw = server.rawReceived[0];
    expect(raw?.[0]).toBe(0xff);
    const id = server.syncIds[0];
    expect(typeof id).toBe('number');
    expect(Number.isSafeInteger(id)).toBe(true);
    await client.sync();
    expect(server.syncIds).toHaveLength(2);
    expect(server.syncIds[1]).not.toBe(id);
    // No greeting, no capabilities: nothing else was sent.
    expect(server.requests.every((request) => request.id === undefined)).toBe(true);
  });

  it('drops stale replies sent before the 0xFF', async () => {
    const server = await fake({
      staleBeforeSync: [{ return: 'stale-exec-status' }, { error: { class: 'GenericError', desc: 'stale error' } }, { return: 123 }],
      commands: { 'guest-info': (request, peer) => peer.reply(request, { version: '7.2.0' }) },
    });
    const client = await connect(server);
    expect(await client.execute('guest-info')).toEqual({ version: '7.2.0' });
    expect(
      client
        .recentExchanges()
        .filter((exchange) => exchange.direction === 'received')
        .map((exchange) => exchange.kind),
    ).toEqual(['return', 'return']);
  });

  it('ignores a sync reply with another id and waits for its own', async () => {
    const server = await fake({
      commands: {
        'guest-sync-delimited': (request, peer) => {
          peer.sendRaw(Buffer.concat([Buffer.from([0xff]), Buffer.from('{"return": 1}\n')]));
          setTimeout(() => {
            peer.sendRaw(Buffer.concat([Buffer.from([0xff]), Buffer.from(`${JSON.stringify({ return: request.arguments?.id })}\n`)]));
          }, 10);
        },
        'guest-ping': (request, peer) => peer.reply(request, {}),
      },
    });
    const client = await connect(server);
    await client.ping();
    const unmatched = client.recentExchanges().filter((exchange) => exchange.kind === 'unmatched');
    expect(unmatched.map((exchange) => exchange.text)).toEqual(['{"return":1}']);
  });

  it('fails with QgaTimeoutError when no agent answers (the socket accepts anyway)', async () => {
    const server = await fake({ ignoreSyncs: 1 });
    const error = await caught(QgaClient.connect(server.socketPath, { timeoutMs: 100 }));
    expect(error).toBeInstanceOf(QgaTimeoutError);
    expect((error as QgaTimeoutError).code).toBe('E_QGA_TIMEOUT');
    expect((error as QgaTimeoutError).operation).toBe('"guest-sync-delimited"');
    await waitUntil(() => server.openConnections() === 0);
  });

  it('reports a missing socket as QgaConnectError', async () => {
    const { socketPath } = await socketDir();
    const error = await caught(QgaClient.connect(socketPath));
    expect(error).toBeInstanceOf(QgaConnectError);
    expect((error as QgaConnectError).message).toContain('(ENOENT)');
  });
});

describe('QgaClient.connectWhenReady', () => {
  it('keeps syncing until the agent starts answering', async () => {
    const server = await fake({ ignoreSyncs: 3 });
    const started = Date.now();
    const client = await QgaClient.connectWhenReady(server.socketPath, { deadlineMs: 3000, attemptTimeoutMs: 40 });
    keep(client);
    expect(server.syncIds).toHaveLength(4);
    expect(new Set(server.syncIds).size).toBe(4);
    expect(Date.now() - started).toBeGreaterThanOrEqual(3 * 40 - 5);
    // One connection: a sync that times out is retried on the same socket.
    expect(server.connectionCount()).toBe(1);
    await client.ping();
  });

  it('copes with an agent that answers every queued sync at once when it starts', async () => {
    // As when qemu-ga starts late and reads a backlog of syncs: each answer has its own 0xFF.
    const held: Array<{ request: FakeRequest; peer: FakePeer }> = [];
    const server = await fake({
      commands: {
        'guest-sync-delimited': (request, peer) => {
          held.push({ request, peer });
          if (held.length < 3) return;
          for (const { request: queued, peer: to } of held) {
            to.sendRaw(Buffer.concat([Buffer.from([0xff]), Buffer.from(`${JSON.stringify({ return: queued.arguments?.id })}\n`)]));
          }
        },
        'guest-ping': (request, peer) => peer.reply(request, 'pong'),
      },
    });
    const client = await QgaClient.connectWhenReady(server.socketPath, { deadlineMs: 3000, attemptTimeoutMs: 30 });
    keep(client);
    expect(await client.execute('guest-ping')).toBe('pong');
  });

  it('waits for a socket that appears after the call', async () => {
    const at = await socketDir('qga.sock');
    let server: FakeQga | undefined;
    defer(async () => server?.stop());
    setTimeout(() => {
      void startFakeQgaServer({}, at).then((started) => (server = started));
    }, 100);
    const started = Date.now();
    const client = await QgaClient.connectWhenReady(at.socketPath, { deadlineMs: 3000 });
    keep(client);
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    expect(server?.syncIds).toHaveLength(1);
  });

  it('gives up with QgaConnectError when the socket never appears', async () => {
    const at = await socketDir('qga.sock');
    const error = await caught(QgaClient.connectWhenReady(at.socketPath, { deadlineMs: 100 }));
    expect(error).toBeInstanceOf(QgaConnectError);
    expect((error as QgaConnectError).code).toBe('E_QGA_CONNECT');
    expect((error as QgaConnectError).message).toMatch(/was not ready within 100 ms \(last: ENOENT\)/);
  });

  it('gives up at the deadline with QgaTimeoutError when connected but unanswered', async () => {
    const server = await fake({ ignoreSyncs: 1000 });
    const started = Date.now();
    const error = await caught(QgaClient.connectWhenReady(server.socketPath, { deadlineMs: 200, attemptTimeoutMs: 50 }));
    expect(error).toBeInstanceOf(QgaTimeoutError);
    expect((error as QgaTimeoutError).message).toMatch(/did not finish guest-sync-delimited \(\d+ attempts\) within 200 ms/);
    expect((error as QgaTimeoutError).hint).toMatch(/org\.qemu\.guest_agent\.0/);
    expect(server.syncIds.length).toBeGreaterThanOrEqual(3);
    expect(Date.now() - started).toBeLessThan(1000);
    await waitUntil(() => server.openConnections() === 0);
  });

  it('stops when aborted', async () => {
    const server = await fake({ ignoreSyncs: 1000 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 60);
    const error = await caught(QgaClient.connectWhenReady(server.socketPath, { deadlineMs: 5000, attemptTimeoutMs: 1000, signal: controller.signal }));
    expect((error as WarmvmError).code).toBe('E_ABORTED');
    await waitUntil(() => server.openConnections() === 0);
  });
});

describe('QgaClient requests', () => {
  it('sends one request at a time, answering each caller with its own reply', async () => {
    let outstanding = 0;
    let overlapped = false;
    const server = await fake({
      commands: {
        echo: (request, peer) => {
          if (outstanding > 0) overlapped = true;
          outstanding += 1;
          setTimeout(() => {
            outstanding -= 1;
            peer.reply(request, request.arguments?.value);
          }, 15);
        },
      },
    });
    const client = await connect(server);
    const results = await Promise.all([1, 2, 3].map((value) => client.execute('echo', { value })));
    expect(results).toEqual([1, 2, 3]);
    expect(overlapped).toBe(false);
    expect(commandsSeen(server)).toEqual(['guest-sync-delimited', 'echo', 'echo', 'echo']);
  });

  it('rejects with QgaExecuteError on an error reply', async () => {
    const server = await fake({
      commands: { 'guest-fsfreeze-freeze': (request, peer) => peer.fail(request, 'GenericError', 'Command guest-fsfreeze-freeze has been disabled') },
    });
    const client = await connect(server);
    const error = await caught(client.execute('guest-fsfreeze-freeze'));
    expect(error).toBeInstanceOf(QgaExecuteError);
    const executeError = error as QgaExecuteError;
    expect(executeError.code).toBe('E_QGA_EXECUTE');
    expect(executeError.command).toBe('guest-fsfreeze-freeze');
    expect(executeError.errorClass).toBe('GenericError');
    expect(executeError.desc).toBe('Command guest-fsfreeze-freeze has been disabled');
    expect(executeError.hint).toMatch(/allow-rpcs/);
  });

  it('after a timeout, resyncs before the next request so the late reply is not taken for it', async () => {
    let sendLate: (() => void) | undefined;
    const server = await fake({
      commands: {
        'guest-get-time': (request, peer) => {
          sendLate = () => peer.reply(request, 'late reply to guest-get-time');
        },
        'guest-ping': (request, peer) => peer.reply(request, 'pong'),
        'guest-sync-delimited': (request, peer) => {
          // The agent was busy: the late reply comes out first, then the sync's 0xFF and reply.
          sendLate?.();
          sendLate = undefined;
          peer.sendRaw(Buffer.concat([Buffer.from([0xff]), Buffer.from(`${JSON.stringify({ return: request.arguments?.id })}\n`)]));
        },
      },
    });
    const client = await connect(server);
    const error = await caught(client.execute('guest-get-time', undefined, { timeoutMs: 50 }));
    expect(error).toBeInstanceOf(QgaTimeoutError);
    expect((error as QgaTimeoutError).message).toBe(`the guest agent on ${server.socketPath} did not finish "guest-get-time" within 50 ms`);
    expect(await client.execute('guest-ping')).toBe('pong');
    expect(commandsSeen(server)).toEqual(['guest-sync-delimited', 'guest-get-time', 'guest-sync-delimited', 'guest-ping']);
    // Only one sync after the timeout, not before every request.
    await client.ping();
    expect(commandsSeen(server).filter((name) => name === 'guest-sync-delimited')).toHaveLength(2);
  });

  it('rejects the pending and the queued requests when QEMU hangs up', async () => {
    const server = await fake({ commands: { 'guest-get-osinfo': (_request, peer) => setTimeout(() => peer.hangUp(), 20) } });
    const client = await connect(server);
    const closes: boolean[] = [];
    client.onClose((error) => closes.push(error.byPeer));
    const first = caught(client.execute('guest-get-osinfo'));
    const second = caught(client.ping());
    const [firstError, secondError] = await Promise.all([first, second]);
    expect(firstError).toBeInstanceOf(QgaDisconnectedError);
    expect((firstError as QgaDisconnectedError).code).toBe('E_QGA_DISCONNECTED');
    expect((firstError as QgaDisconnectedError).message).toBe(`QEMU closed the guest agent socket ${server.socketPath} during "guest-get-osinfo"`);
    expect(secondError).toBeInstanceOf(QgaDisconnectedError);
    expect(closes).toEqual([true]);
    expect(commandsSeen(server)).toEqual(['guest-sync-delimited', 'guest-get-osinfo']);
  });

  it('leaves the queue at once when aborted while waiting its turn, and never sends', async () => {
    let release: (() => void) | undefined;
    const server = await fake({
      commands: {
        slow: (request, peer) => {
          release = () => peer.reply(request, 'slow done');
        },
      },
    });
    const client = await connect(server);
    const slow = client.execute('slow');
    await server.waitForRequests(2);
    const controller = new AbortController();
    const queued = caught(client.ping({ signal: controller.signal }));
    controller.abort();
    expect(((await queued) as WarmvmError).code).toBe('E_ABORTED');
    release?.();
    expect(await slow).toBe('slow done');
    await client.sync();
    expect(commandsSeen(server)).toEqual(['guest-sync-delimited', 'slow', 'guest-sync-delimited']);
  });

  it('close() is idempotent and fails what is pending', async () => {
    const server = await fake({ commands: { hang: () => {} } });
    const client = await connect(server);
    const pending = caught(client.execute('hang'));
    await server.waitForRequests(2);
    const first = client.close();
    expect(client.close()).toBe(first);
    await first;
    const error = await pending;
    expect(error).toBeInstanceOf(QgaDisconnectedError);
    expect((error as QgaDisconnectedError).byPeer).toBe(false);
    expect(await caught(client.ping())).toBeInstanceOf(QgaDisconnectedError);
  });
});

describe('QgaClient.exec', () => {
  it('sends input-data as base64 with captured output, polls until exit and decodes the output', async () => {
    const server = await fake({
      exec: () => ({ exitcode: 3, stdout: 'rotated 2 secrets\n', stderr: Buffer.from([0xc3, 0xa9, 0x0a]), pollsBeforeExit: 3 }),
    });
    const client = await connect(server);
    const result = await client.exec('/usr/local/bin/rotate-secrets', ['--from-stdin'], {
      inputData: SECRET,
      env: ['LANG=C'],
    });
    expect(result.exitCode).toBe(3);
    expect(result.signal).toBeUndefined();
    expect(result.stdout.toString()).toBe('rotated 2 secrets\n');
    expect(result.stderr.toString()).toBe('é\n');
    expect(server.execCalls).toEqual([{ path: '/usr/local/bin/rotate-secrets', args: ['--from-stdin'], env: ['LANG=C'], captureOutput: true, input: Buffer.from(SECRET) }]);
    expect([...server.polls.values()]).toEqual([4]);
    expect(commandsSeen(server)).toEqual(['guest-sync-delimited', 'guest-exec', ...Array(4).fill('guest-exec-status')]);
  });

  it('backs off between polls from 10 ms: up to 20 ms in the first second, then up to pollIntervalMs', async () => {
    const pauses: number[] = [];
    let elapsed = 0;
    for (let pause = nextPollInterval(0, 0, 100); elapsed < 1500; pause = nextPollInterval(pause, elapsed, 100)) {
      pauses.push(pause);
      elapsed += pause;
    }
    expect(pauses.slice(0, 4)).toEqual([10, 20, 20, 20]);
    expect(pauses.filter((pause) => pause > 20)).toEqual([40, 80, 100, 100, 100, 100]);
    expect(nextPollInterval(0, 0, 5)).toBe(5);
    expect(nextPollInterval(5, 2000, 5)).toBe(5);
    expect(nextPollInterval(20, 999, 100)).toBe(20);
    expect(nextPollInterval(20, 1000, 100)).toBe(40);
  });

  it('polls until the program exits', async () => {
    const server = await fake({ exec: () => ({ pollsBeforeExit: 6 }) });
    const client = await connect(server);
    const result = await client.exec('/bin/true', [], { pollIntervalMs: 40 });
    expect([...server.polls.values()]).toEqual([7]);
    expect(result).toEqual({ exitCode: 0, signal: undefined, stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) });
  });

  it('runs what onStarted queues between guest-exec and the first status poll', async () => {
    const server = await fake({ exec: () => ({ pollsBeforeExit: 2 }) });
    const client = await connect(server);
    let clock: Promise<void> | undefined;
    const seen: number[] = [];
    await client.exec('/usr/local/bin/rotate-secrets', [], {
      onStarted: (pid) => {
        seen.push(pid);
        clock = client.setTime(5n);
      },
    });
    await clock;
    expect(seen).toEqual([1000]);
    expect(commandsSeen(server)).toEqual(['guest-sync-delimited', 'guest-exec', 'guest-set-time', ...Array(3).fill('guest-exec-status')]);
  });

  it('reports a command killed by a signal', async () => {
    const server = await fake({ exec: () => ({ signal: 9 }) });
    const client = await connect(server);
    const result = await client.exec('/bin/sleep', ['100']);
    expect(result.exitCode).toBeUndefined();
    expect(result.signal).toBe(9);
  });

  it('passes no input-data when none is given', async () => {
    const server = await fake();
    const client = await connect(server);
    await client.exec('/bin/true', []);
    expect(server.execCalls[0]?.input).toBeUndefined();
    expect(server.requests[1]?.arguments).toEqual({ path: '/bin/true', arg: [], 'capture-output': true });
  });

  it('times out while the command still runs, naming its guest pid', async () => {
    const server = await fake({ exec: () => ({ pollsBeforeExit: 1_000_000 }) });
    const client = await connect(server);
    const error = await caught(client.exec('/usr/bin/yes', [], { timeoutMs: 120 }));
    expect(error).toBeInstanceOf(QgaTimeoutError);
    expect((error as QgaTimeoutError).message).toBe(`the guest agent on ${server.socketPath} did not finish guest-exec of /usr/bin/yes within 120 ms`);
    expect((error as QgaTimeoutError).hint).toContain('pid 1000');
  });

  it('never lets the secret out: not in errors, logs or recentExchanges', async () => {
    const logged: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        logged.push(chunk.toString());
        done();
      },
    });
    const logger = pino({ level: 'debug' }, destination);
    const server = await fake({
      commands: { 'guest-exec': (request, peer) => peer.fail(request, 'GenericError', 'Failed to execute child process “/nope” (No such file or directory)') },
    });
    const client = await connect(server, { logger });
    const error = await caught(client.exec('/nope', ['a'], { inputData: SECRET }));
    expect(error).toBeInstanceOf(QgaExecuteError);
    expect((error as QgaExecuteError).command).toBe('guest-exec');
    // What the fake received proves the secret really was sent…
    expect(server.execCalls).toHaveLength(0);
    expect(server.requests[1]?.arguments?.['input-data']).toBe(SECRET_BASE64);
    // …and nothing a person or a trace can read holds it.
    const readable = [JSON.stringify(error), String(error), (error as Error).stack ?? '', logged.join(''), JSON.stringify(client.recentExchanges())].join('\n');
    expect(readable).not.toContain(SECRET);
    expect(readable).not.toContain(SECRET_BASE64);
    const sent = client.recentExchanges().find((exchange) => exchange.name === 'guest-exec' && exchange.direction === 'sent');
    expect(sent?.text).toContain('"input-data":"[redacted]"');
    // The log did record the request, by name only.
    expect(logged.join('')).toContain('"command":"guest-exec"');
  });

  it('rejects a malformed guest-exec-status reply clearly', async () => {
    const server = await fake({ commands: { 'guest-exec-status': (request, peer) => peer.reply(request, { running: 'maybe' }) } });
    const client = await connect(server);
    const error = await caught(client.exec('/bin/true', []));
    expect(error).toBeInstanceOf(QgaExecuteError);
    expect((error as QgaExecuteError).errorClass).toBe('InvalidReply');
  });
});

describe('QgaClient.setTime', () => {
  it('sends the given nanoseconds exactly', async () => {
    const server = await fake();
    const client = await connect(server);
    await client.setTime(1700000000123456789n);
    const raw = server.rawReceived[0]?.toString('latin1') ?? '';
    expect(raw).toContain('{"execute":"guest-set-time","arguments":{"time":1700000000123456789}}\n');
  });

  it('defaults to the host clock in nanoseconds', async () => {
    const server = await fake();
    const client = await connect(server);
    const before = BigInt(Date.now()) * 1_000_000n;
    await client.setTime();
    const after = BigInt(Date.now()) * 1_000_000n;
    const raw = server.rawReceived[0]?.toString('latin1') ?? '';
    const digits = /"guest-set-time","arguments":\{"time":(\d+)\}/.exec(raw)?.[1];
    expect(digits).toBeDefined();
    const sent = BigInt(digits ?? '0');
    expect(sent >= before && sent <= after).toBe(true);
  });
});
