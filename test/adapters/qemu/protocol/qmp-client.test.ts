import { describe, expect, it } from 'vitest';
import { WarmvmError } from '../../../../adapters/support/errors.js';
import { QmpConnectError, QmpDisconnectedError, QmpExecuteError, QmpGreetingError, QmpNegotiationError, QmpTimeoutError } from '../../../../adapters/qemu/protocol/errors.js';
import { QmpClient, type QmpEvent } from '../../../../adapters/qemu/protocol/qmp-client.js';
import { caught, useCleanups, waitUntil } from '../../../helpers/client-harness.js';
import { startFakeServer, type FakeRequest, type FakeServer } from '../../../helpers/fake-json-lines-server.js';
import { QEMU_GREETING, startFakeQmpServer } from '../../../helpers/fake-qmp-server.js';

const { defer, keep, socketDir } = useCleanups();
const fake = async (options: Parameters<typeof startFakeQmpServer>[0] = {}): Promise<FakeServer> => keep(await startFakeQmpServer(options));
const connect = async (server: FakeServer, opts: Parameters<typeof QmpClient.connect>[1] = {}): Promise<QmpClient> =>
  keep(await QmpClient.connect(server.socketPath, { timeoutMs: 2000, ...opts }));

describe('QmpClient.connect', () => {
  it('reads the greeting, negotiates capabilities first and exposes the version', async () => {
    const server = await fake();
    const client = await connect(server);
    expect(client.version).toEqual({ major: 10, minor: 0, micro: 2, package: 'Debian 1:10.0.2+ds-1~bpo12+1' });
    expect(client.capabilities).toEqual(['oob']);
    expect(server.requests.map((request) => request.execute)).toEqual(['qmp_capabilities']);
    expect(server.requests[0]?.arguments).toBeUndefined();
    expect(typeof server.requests[0]?.id).toBe('string');
    expect(client.closed).toBe(false);
  });

  it('copes with a greeting dribbled one byte at a time', async () => {
    const bytes = Buffer.from(`${JSON.stringify(QEMU_GREETING)}\r\n`);
    const server = await fake({
      greeting: '',
      onConnect: (peer) => {
        let next = 0;
        const dribble = (): void => {
          peer.sendRaw(bytes.subarray(next, next + 1));
          next += 1;
          if (next < bytes.length) setImmediate(dribble);
        };
        dribble();
      },
    });
    const client = await connect(server);
    expect(client.version.micro).toBe(2);
    expect(server.requests.map((request) => request.execute)).toEqual(['qmp_capabilities']);
  });

  it('rejects a first message that is not a QMP greeting, and hangs up', async () => {
    const server = await fake({ greeting: { hello: 'I am not QEMU' } });
    const error = await caught(QmpClient.connect(server.socketPath, { timeoutMs: 2000 }));
    expect(error).toBeInstanceOf(QmpGreetingError);
    expect((error as QmpGreetingError).code).toBe('E_QMP_GREETING');
    expect((error as QmpGreetingError).message).toContain('{"hello":"I am not QEMU"}');
    expect((error as QmpGreetingError).hint).toMatch(/-qmp socket/);
    expect(server.requests).toHaveLength(0);
    await waitUntil(() => server.openConnections() === 0);
  });

  it('rejects a greeting whose version is not numbers', async () => {
    const server = await fake({ greeting: { QMP: { version: { qemu: { major: '10', minor: 0, micro: 2 } }, capabilities: [] } } });
    expect(await caught(QmpClient.connect(server.socketPath, { timeoutMs: 2000 }))).toBeInstanceOf(QmpGreetingError);
  });

  it('fails with QmpNegotiationError when qmp_capabilities is refused', async () => {
    const server = await fake({
      commands: { qmp_capabilities: (request, peer) => peer.fail(request, 'CommandNotFound', 'Capabilities negotiation is already complete, command ignored') },
    });
    const error = await caught(QmpClient.connect(server.socketPath, { timeoutMs: 2000 }));
    expect(error).toBeInstanceOf(QmpNegotiationError);
    expect((error as QmpNegotiationError).code).toBe('E_QMP_NEGOTIATION');
    expect((error as QmpNegotiationError).message).toContain('Capabilities negotiation is already complete');
    const cause = (error as QmpNegotiationError).cause;
    expect(cause).toBeInstanceOf(QmpExecuteError);
    expect((cause as QmpExecuteError).errorClass).toBe('CommandNotFound');
  });

  it('times out when no greeting comes (another client holds the socket)', async () => {
    const server = await startFakeServer({});
    keep(server);
    const started = Date.now();
    const error = await caught(QmpClient.connect(server.socketPath, { timeoutMs: 150 }));
    expect(error).toBeInstanceOf(QmpTimeoutError);
    expect((error as QmpTimeoutError).code).toBe('E_QMP_TIMEOUT');
    expect((error as QmpTimeoutError).operation).toBe('the greeting');
    expect((error as QmpTimeoutError).hint).toMatch(/one QMP client at a time/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });

  it('reports a missing socket as QmpConnectError with the errno as cause', async () => {
    const { socketPath } = await socketDir();
    const error = await caught(QmpClient.connect(socketPath));
    expect(error).toBeInstanceOf(QmpConnectError);
    expect((error as QmpConnectError).code).toBe('E_QMP_CONNECT');
    expect((error as QmpConnectError).message).toContain('ENOENT');
    expect(((error as QmpConnectError).cause as NodeJS.ErrnoException).code).toBe('ENOENT');
  });

  it('reports a peer that hangs up before greeting as disconnected', async () => {
    const server = await fake({ greeting: '', onConnect: (peer) => setTimeout(() => peer.hangUp(), 20) });
    const error = await caught(QmpClient.connect(server.socketPath, { timeoutMs: 2000 }));
    expect(error).toBeInstanceOf(QmpDisconnectedError);
    expect((error as QmpDisconnectedError).byPeer).toBe(true);
    expect((error as QmpDisconnectedError).operation).toBe('the greeting');
  });

  it('is aborted by its signal', async () => {
    const server = await startFakeServer({});
    keep(server);
    const controller = new AbortController();
    const promise = QmpClient.connect(server.socketPath, { timeoutMs: 5000, signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    const error = await caught(promise);
    expect((error as WarmvmError).code).toBe('E_ABORTED');
    await waitUntil(() => server.openConnections() === 0);
  });
});

describe('QmpClient.connectWhenReady', () => {
  it('waits for a socket that appears after the call', async () => {
    const at = await socketDir();
    let server: FakeServer | undefined;
    defer(async () => server?.stop());
    const startLater = new Promise<void>((resolve) => {
      setTimeout(() => {
        void startFakeQmpServer({}, at).then((started) => {
          server = started;
          resolve();
        });
      }, 120);
    });
    const started = Date.now();
    const client = await QmpClient.connectWhenReady(at.socketPath, { deadlineMs: 3000 });
    keep(client);
    await startLater;
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
    expect(client.version.major).toBe(10);
    expect(server?.connectionCount()).toBe(1);
  });

  it('gives up at the deadline with the last reason', async () => {
    const { socketPath } = await socketDir();
    const started = Date.now();
    const error = await caught(QmpClient.connectWhenReady(socketPath, { deadlineMs: 150 }));
    const elapsed = Date.now() - started;
    expect(error).toBeInstanceOf(QmpConnectError);
    expect((error as QmpConnectError).message).toMatch(/was not ready within 150 ms \(\d+ attempts, last: ENOENT\)/);
    // Retried about every 20 ms, not once.
    expect(Number(/\((\d+) attempts/.exec((error as Error).message)?.[1])).toBeGreaterThan(3);
    expect(elapsed).toBeGreaterThanOrEqual(140);
    expect(elapsed).toBeLessThan(1000);
  });

  it('does not retry a bad greeting', async () => {
    const server = await fake({ greeting: { nope: true } });
    const error = await caught(QmpClient.connectWhenReady(server.socketPath, { deadlineMs: 2000 }));
    expect(error).toBeInstanceOf(QmpGreetingError);
    expect(server.connectionCount()).toBe(1);
  });

  it('stops when aborted', async () => {
    const { socketPath } = await socketDir();
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const error = await caught(QmpClient.connectWhenReady(socketPath, { deadlineMs: 5000, signal: controller.signal }));
    expect((error as WarmvmError).code).toBe('E_ABORTED');
  });
});

describe('QmpClient.execute', () => {
  it('sends arguments with a unique id and resolves with the return value', async () => {
    const server = await fake({
      commands: {
        'query-status': (request, peer) => peer.reply(request, { status: 'paused', running: false }),
        'migrate-set-capabilities': (request, peer) => peer.reply(request, {}),
      },
    });
    const client = await connect(server);
    const status = await client.execute<{ status: string; running: boolean }>('query-status');
    expect(status).toEqual({ status: 'paused', running: false });
    const caps = [{ capability: 'mapped-ram', state: true }];
    expect(await client.execute('migrate-set-capabilities', { capabilities: caps })).toEqual({});
    const [negotiate, query, migrate] = server.requests;
    expect(query?.raw).toEqual({ execute: 'query-status', id: query?.id });
    expect(migrate?.arguments).toEqual({ capabilities: caps });
    expect(new Set([negotiate?.id, query?.id, migrate?.id]).size).toBe(3);
  });

  it('matches replies by id when they come back out of order', async () => {
    const held: Array<{ request: FakeRequest; reply: () => void }> = [];
    const server = await fake({
      commands: {
        echo: (request, peer) => held.push({ request, reply: () => peer.reply(request, request.arguments?.value) }),
      },
    });
    const client = await connect(server);
    const first = client.execute('echo', { value: 'first' });
    const second = client.execute('echo', { value: 'second' });
    await waitUntil(() => held.length === 2);
    held[1]?.reply();
    held[0]?.reply();
    expect(await Promise.all([first, second])).toEqual(['first', 'second']);
  });

  it('delivers events before and between replies without disturbing pending calls', async () => {
    const server = await fake({
      commands: {
        cont: (request, peer) => {
          peer.event('RESUME');
          peer.event('BLOCK_IO_ERROR', { device: 'disk0' });
          peer.reply(request, {});
          peer.event('RTC_CHANGE', { offset: 3 });
        },
        'query-status': (request, peer) => peer.reply(request, { status: 'running' }),
      },
    });
    const client = await connect(server);
    const events: QmpEvent[] = [];
    client.onEvent((event) => events.push(event));
    expect(await client.execute('cont')).toEqual({});
    expect(await client.execute('query-status')).toEqual({ status: 'running' });
    expect(events.map((event) => event.event)).toEqual(['RESUME', 'BLOCK_IO_ERROR', 'RTC_CHANGE']);
    expect(events[0]).toEqual({ event: 'RESUME', data: undefined, timestamp: { seconds: 1700000000, microseconds: 42 } });
    expect(events[1]?.data).toEqual({ device: 'disk0' });
  });

  it('delivers events sent in the same chunk as a reply, and stops after unsubscribe', async () => {
    const server = await fake({
      commands: {
        stop: (request, peer) => peer.sendRaw(`{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}\r\n{"return": {}, "id": ${JSON.stringify(request.id)}}\r\n`),
      },
    });
    const client = await connect(server);
    const names: string[] = [];
    const unsubscribe = client.onEvent((event) => names.push(event.event));
    await client.execute('stop');
    unsubscribe();
    await client.execute('stop');
    expect(names).toEqual(['STOP']);
  });

  it('keeps the reader going when an event listener throws', async () => {
    const server = await fake({
      commands: {
        cont: (request, peer) => {
          peer.event('RESUME');
          peer.reply(request, 'ok');
        },
      },
    });
    const client = await connect(server);
    client.onEvent(() => {
      throw new Error('listener bug');
    });
    expect(await client.execute('cont')).toBe('ok');
  });

  it('rejects with QmpExecuteError carrying command, arguments, class and desc', async () => {
    const server = await fake({
      commands: { device_del: (request, peer) => peer.fail(request, 'DeviceNotFound', "Device 'nic9' not found") },
    });
    const client = await connect(server);
    const error = await caught(client.execute('device_del', { id: 'nic9' }));
    expect(error).toBeInstanceOf(QmpExecuteError);
    expect(error).toBeInstanceOf(WarmvmError);
    const executeError = error as QmpExecuteError;
    expect(executeError.code).toBe('E_QMP_EXECUTE');
    expect(executeError.command).toBe('device_del');
    expect(executeError.args).toEqual({ id: 'nic9' });
    expect(executeError.errorClass).toBe('DeviceNotFound');
    expect(executeError.desc).toBe("Device 'nic9' not found");
    expect(executeError.message).toBe(`QMP command "device_del" failed: Device 'nic9' not found (DeviceNotFound)`);
    expect(executeError.hint).toMatch(/device id/);
  });

  it('answers unknown commands with CommandNotFound like QEMU', async () => {
    const client = await connect(await fake());
    const error = await caught(client.execute('no-such-command'));
    expect((error as QmpExecuteError).errorClass).toBe('CommandNotFound');
  });

  it('times out when QEMU never answers, and drops the late reply', async () => {
    let lateReply: (() => void) | undefined;
    const server = await fake({
      commands: {
        slow: (request, peer) => {
          lateReply = () => peer.reply(request, 'late');
        },
        fast: (request, peer) => {
          lateReply?.();
          peer.reply(request, 'fast');
        },
      },
    });
    const client = await connect(server);
    const started = Date.now();
    const error = await caught(client.execute('slow', undefined, { timeoutMs: 80 }));
    expect(error).toBeInstanceOf(QmpTimeoutError);
    expect((error as QmpTimeoutError).message).toBe(`no answer on QMP socket ${server.socketPath} for command "slow" within 80 ms`);
    expect((error as QmpTimeoutError).timeoutMs).toBe(80);
    expect(Date.now() - started).toBeGreaterThanOrEqual(75);
    // The late "slow" reply arrives just before "fast"'s: the ids keep them apart.
    expect(await client.execute('fast')).toBe('fast');
    expect(client.recentExchanges().some((exchange) => exchange.kind === 'unmatched' && exchange.text.includes('"late"'))).toBe(true);
  });

  it('rejects pending calls with QmpDisconnectedError when QEMU hangs up, and tells onClose', async () => {
    const server = await fake({ commands: { 'query-migrate': (_request, peer) => setTimeout(() => peer.hangUp(), 20) } });
    const client = await connect(server);
    const closes: QmpDisconnectedError[] = [];
    client.onClose((error) => closes.push(error));
    const error = await caught(client.execute('query-migrate'));
    expect(error).toBeInstanceOf(QmpDisconnectedError);
    expect((error as QmpDisconnectedError).code).toBe('E_QMP_DISCONNECTED');
    expect((error as QmpDisconnectedError).byPeer).toBe(true);
    expect((error as QmpDisconnectedError).message).toBe(`QEMU closed the QMP connection ${server.socketPath} during command "query-migrate"`);
    expect(closes).toHaveLength(1);
    expect(closes[0]?.byPeer).toBe(true);
    expect(closes[0]?.message).toBe(`QEMU closed the QMP connection ${server.socketPath}`);
    expect(client.closed).toBe(true);
    // Later calls fail at once, and late onClose subscribers still hear about it.
    expect(await caught(client.execute('query-status'))).toBeInstanceOf(QmpDisconnectedError);
    const late = await new Promise<QmpDisconnectedError>((resolve) => client.onClose(resolve));
    expect(late.byPeer).toBe(true);
  });

  it('is aborted by its signal and frees the slot', async () => {
    const server = await fake({ commands: { hang: () => {}, ping: (request, peer) => peer.reply(request, 'pong') } });
    const client = await connect(server);
    const controller = new AbortController();
    const promise = client.execute('hang', undefined, { signal: controller.signal, timeoutMs: 5000 });
    controller.abort();
    const error = await caught(promise);
    expect((error as WarmvmError).code).toBe('E_ABORTED');
    expect((error as WarmvmError).message).toBe('command "hang" was cancelled');
    expect(await client.execute('ping')).toBe('pong');
  });

  it('rejects at once with an already-aborted signal, sending nothing', async () => {
    const server = await fake();
    const client = await connect(server);
    const error = await caught(client.execute('query-status', undefined, { signal: AbortSignal.abort() }));
    expect((error as WarmvmError).code).toBe('E_ABORTED');
    expect(server.requests.map((request) => request.execute)).toEqual(['qmp_capabilities']);
  });
});

describe('QmpClient.waitForEvent', () => {
  it('resolves with the first matching event that the predicate accepts', async () => {
    const server = await fake({
      commands: {
        migrate: (request, peer) => {
          peer.reply(request, {});
          peer.event('MIGRATION', { status: 'setup' });
          peer.event('STOP');
          peer.event('MIGRATION', { status: 'completed' });
        },
      },
    });
    const client = await connect(server);
    const completed = client.waitForEvent('MIGRATION', {
      timeoutMs: 2000,
      predicate: (event) => (event.data as { status?: string }).status === 'completed',
    });
    await client.execute('migrate', { uri: 'file:/tmp/x' });
    const event = await completed;
    expect(event.data).toEqual({ status: 'completed' });
  });

  it('times out naming the event', async () => {
    const client = await connect(await fake());
    const error = await caught(client.waitForEvent('RESUME', { timeoutMs: 50 }));
    expect(error).toBeInstanceOf(QmpTimeoutError);
    expect((error as QmpTimeoutError).operation).toBe('waiting for event RESUME');
    expect((error as QmpTimeoutError).hint).toMatch(/did not emit RESUME/);
  });

  it('rejects on disconnect', async () => {
    const server = await fake();
    const client = await connect(server);
    const waiting = caught(client.waitForEvent('SHUTDOWN', { timeoutMs: 5000 }));
    await server.stop();
    const error = await waiting;
    expect(error).toBeInstanceOf(QmpDisconnectedError);
    expect((error as QmpDisconnectedError).operation).toBe('waiting for event SHUTDOWN');
  });

  it('is aborted by its signal', async () => {
    const client = await connect(await fake());
    const controller = new AbortController();
    const waiting = client.waitForEvent('SHUTDOWN', { timeoutMs: 5000, signal: controller.signal });
    controller.abort();
    expect(((await caught(waiting)) as WarmvmError).code).toBe('E_ABORTED');
  });
});

describe('QmpClient.close', () => {
  it('is idempotent and rejects pending calls as closed by us', async () => {
    const server = await fake({ commands: { hang: () => {} } });
    const client = await connect(server);
    const closes: boolean[] = [];
    client.onClose((error) => closes.push(error.byPeer));
    const pending = caught(client.execute('hang'));
    await server.waitForRequests(2);
    const first = client.close();
    const second = client.close();
    expect(second).toBe(first);
    await first;
    const error = await pending;
    expect(error).toBeInstanceOf(QmpDisconnectedError);
    expect((error as QmpDisconnectedError).byPeer).toBe(false);
    expect((error as QmpDisconnectedError).message).toContain('was closed by warmvm');
    expect(closes).toEqual([false]);
    await waitUntil(() => server.openConnections() === 0);
  });
});

describe('QmpClient.recentExchanges', () => {
  it('records commands, events and replies in order, and keeps only the last 20', async () => {
    const server = await fake({
      commands: {
        cont: (request, peer) => {
          peer.event('RESUME');
          peer.reply(request, {});
        },
      },
    });
    const client = await connect(server);
    await client.execute('cont');
    const kinds = client.recentExchanges().map((exchange) => `${exchange.direction}:${exchange.kind}:${exchange.name ?? ''}`);
    expect(kinds).toEqual([
      'received:greeting:',
      'sent:command:qmp_capabilities',
      'received:return:qmp_capabilities',
      'sent:command:cont',
      'received:event:RESUME',
      'received:return:cont',
    ]);
    for (let i = 0; i < 15; i += 1) await client.execute('cont');
    const exchanges = client.recentExchanges();
    expect(exchanges).toHaveLength(20);
    expect(exchanges.at(-1)?.kind).toBe('return');
    expect(exchanges.at(-1)?.text).toMatch(/^\{"return":\{\},"id":"warmvm-\d+"\}$/);
  });
});
