import { describe, expect, it } from 'vitest';
import { WarmvmError } from '../../../../adapters/support/errors.js';
import {
  ProtocolConnectError,
  ProtocolDisconnectedError,
  ProtocolError,
  ProtocolExecuteError,
  ProtocolTimeoutError,
  QgaExecuteError,
  QgaTimeoutError,
  QmpConnectError,
  QmpExecuteError,
} from '../../../../adapters/qemu/protocol/errors.js';
import { QgaClient } from '../../../../adapters/qemu/protocol/qga-client.js';
import { QmpClient } from '../../../../adapters/qemu/protocol/qmp-client.js';
import { caught, useCleanups } from '../../../helpers/client-harness.js';
import { startFakeQgaServer } from '../../../helpers/fake-qga-server.js';
import { startFakeQmpServer } from '../../../helpers/fake-qmp-server.js';

const { keep, socketDir } = useCleanups();

describe('JsonLinesConnection state', () => {
  it('is open once the QMP handshake is done, closing while warmvm closes it, then closed', async () => {
    const server = keep(await startFakeQmpServer());
    const client = await QmpClient.connect(server.socketPath, { timeoutMs: 2000 });
    expect(client.state).toBe('open');
    expect(client.channel).toBe('qmp');
    const closing = client.close();
    expect(client.state).toBe('closing');
    expect(client.closed).toBe(true);
    await closing;
    expect(client.state).toBe('closed');
  });

  it('is open once the agent answered its first sync, and closed when QEMU hangs up', async () => {
    const server = keep(await startFakeQgaServer({ commands: { 'guest-shutdown': (_request, peer) => peer.hangUp() } }));
    const client = keep(await QgaClient.connect(server.socketPath, { timeoutMs: 2000 }));
    expect(client.state).toBe('open');
    expect(client.channel).toBe('qga');
    const error = await caught(client.execute('guest-shutdown'));
    expect(error).toBeInstanceOf(ProtocolDisconnectedError);
    expect(client.state).toBe('closed');
  });
});

describe('the protocol error family', () => {
  it('names the channel and keeps what was sent and received, the arguments of a QMP command redacted', async () => {
    const server = keep(await startFakeQmpServer({ commands: { 'object-add': (request, peer) => peer.fail(request, 'GenericError', 'bad object') } }));
    const client = keep(await QmpClient.connect(server.socketPath, { timeoutMs: 2000 }));
    const error = await caught(client.execute('object-add', { id: 'sec0', secret: 'hunter2' }));
    expect(error).toBeInstanceOf(QmpExecuteError);
    expect(error).toBeInstanceOf(ProtocolExecuteError);
    expect(error).toBeInstanceOf(ProtocolError);
    expect(error).toBeInstanceOf(WarmvmError);
    const executeError = error as QmpExecuteError;
    expect(executeError.channel).toBe('qmp');
    expect(executeError.socketPath).toBe(server.socketPath);
    expect(executeError.args).toEqual({ id: 'sec0', secret: '[redacted]' });
    expect(executeError.exchanges.slice(-2).map((exchange) => `${exchange.direction}:${exchange.kind}:${exchange.name ?? ''}`)).toEqual([
      'sent:command:object-add',
      'received:error:object-add',
    ]);
    expect(JSON.stringify(executeError)).not.toContain('hunter2');
  });

  it("never keeps a guest agent request's arguments, and keeps its exchanges redacted", async () => {
    const server = keep(await startFakeQgaServer({ commands: { 'guest-exec': (request, peer) => peer.fail(request, 'GenericError', 'no such file') } }));
    const client = keep(await QgaClient.connect(server.socketPath, { timeoutMs: 2000 }));
    const error = await caught(client.exec('/nope', [], { inputData: 'deadbeef' }));
    expect(error).toBeInstanceOf(QgaExecuteError);
    const executeError = error as QgaExecuteError;
    expect(executeError.channel).toBe('qga');
    expect('args' in executeError).toBe(false);
    const sent = executeError.exchanges.find((exchange) => exchange.direction === 'sent' && exchange.name === 'guest-exec');
    expect(sent?.text).toContain('"input-data":"[redacted]"');
    expect(JSON.stringify(executeError)).not.toContain(Buffer.from('deadbeef').toString('base64'));
  });

  it('keeps the request a timeout gave up on', async () => {
    const server = keep(await startFakeQgaServer({ commands: { 'guest-info': () => {} } }));
    const client = keep(await QgaClient.connect(server.socketPath, { timeoutMs: 2000 }));
    const error = await caught(client.execute('guest-info', undefined, { timeoutMs: 30 }));
    expect(error).toBeInstanceOf(QgaTimeoutError);
    expect(error).toBeInstanceOf(ProtocolTimeoutError);
    expect((error as QgaTimeoutError).exchanges.at(-1)).toMatchObject({ direction: 'sent', kind: 'command', name: 'guest-info' });
  });

  it('keeps the system error of a failed connect as cause, with no exchanges yet', async () => {
    const { socketPath } = await socketDir();
    const error = await caught(QmpClient.connect(socketPath));
    expect(error).toBeInstanceOf(QmpConnectError);
    expect(error).toBeInstanceOf(ProtocolConnectError);
    const connectError = error as QmpConnectError;
    expect(connectError.channel).toBe('qmp');
    expect(connectError.exchanges).toEqual([]);
    expect(connectError.message).toBe(`cannot connect to the QMP socket ${socketPath} (ENOENT)`);
    expect((connectError.cause as NodeJS.ErrnoException).code).toBe('ENOENT');
    expect(connectError.hint).toMatch(/-qmp unix:/);
  });
});
