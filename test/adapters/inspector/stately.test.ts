import { createServer } from 'node:net';
import { createActor, createMachine } from 'xstate';
import { WebSocketServer } from 'ws';
import { describe, expect, it } from 'vitest';
import { connectStatelyInspector } from '../../../adapters/inspector/stately.js';

/** A port nothing listens on: taken, then given back. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const toggle = createMachine({ id: 'toggle', initial: 'off', states: { off: { on: { FLIP: 'on' } }, on: { on: { FLIP: 'off' } } } });

describe('forwarding to a Stately WebSocket inspector', () => {
  it('with no server listening, says so at once instead of retrying forever', async () => {
    const started = Date.now();
    expect(await connectStatelyInspector(`ws://127.0.0.1:${await closedPort()}`)).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(await connectStatelyInspector('not a url')).toBeUndefined();
  });

  it('sends the inspection events of a run to the server', async () => {
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    const received: string[] = [];
    server.on('connection', (socket) => socket.on('message', (data: Buffer) => received.push(data.toString())));
    try {
      const inspector = await connectStatelyInspector(`ws://127.0.0.1:${(server.address() as { port: number }).port}`);
      expect(inspector).toBeDefined();
      const actor = createActor(toggle, { inspect: inspector?.inspect });
      actor.start();
      actor.send({ type: 'FLIP' });
      for (let waited = 0; waited < 5_000 && !received.some((text) => text.includes('FLIP')); waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
      inspector?.stop();
      expect(received.some((text) => text.includes('FLIP'))).toBe(true);
      expect(received.some((text) => text.includes('@xstate.snapshot') && text.includes('"on"'))).toBe(true);
    } finally {
      for (const client of server.clients) client.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
