import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A scriptable stand-in for QEMU's end of a QMP or guest agent socket: a real unix socket in a
 * fresh temp folder. Its own line splitting is deliberately independent of adapters/qemu/protocol/framing.ts,
 * so a bug there cannot hide itself in the fake. fake-qmp-server.ts and fake-qga-server.ts give it
 * each protocol's manners.
 */

/** A JSON object as the fake reads and writes it. */
export type Json = Record<string, unknown>;

/** One request the fake received. */
export interface FakeRequest {
  execute: string;
  arguments: Json | undefined;
  id: unknown;
  /** The message as received. */
  raw: Json;
}

/** The server's side of one connection, as a command handler sees it. */
export interface FakePeer {
  /** Writes one message the way QEMU does: compact JSON and "\r\n". */
  send(message: Json): void;
  /** Writes bytes as they are: split messages, garbage, the 0xFF sentinel. */
  sendRaw(data: string | Buffer): void;
  reply(request: FakeRequest, value: unknown): void;
  fail(request: FakeRequest, errorClass: string, desc: string): void;
  event(name: string, data?: unknown): void;
  /** Closes the connection as a crashing QEMU would. */
  hangUp(): void;
}

/** Answers one command. Doing nothing is "never answers". */
export type CommandHandler = (request: FakeRequest, peer: FakePeer) => void;

/** How the fake behaves: its greeting, its commands, its line ending. */
export interface FakeServerOptions {
  /** Sent as soon as a client connects; raw text is sent as is. Omit for no greeting (the guest agent). */
  greeting?: Json | string;
  /** Handlers by command name; a command without one gets CommandNotFound, like QEMU. */
  commands?: Record<string, CommandHandler>;
  /** The line ending of sent messages; QEMU uses "\r\n", qemu-ga "\n". */
  lineEnding?: string;
  /** Socket file name inside the temp folder. */
  socketName?: string;
  /** Runs for each new connection, after the greeting (to dribble bytes, hang up, …). */
  onConnect?: (peer: FakePeer) => void;
}

/** The running fake, and what it saw. */
export interface FakeServer {
  readonly socketPath: string;
  readonly dir: string;
  /** Every request received, in order, on every connection. */
  readonly requests: FakeRequest[];
  /** Every byte received, per connection, in order. */
  readonly rawReceived: Buffer[];
  connectionCount(): number;
  /** Open connections right now. */
  openConnections(): number;
  /** Resolves when the server has seen `count` requests in total. */
  waitForRequests(count: number, timeoutMs?: number): Promise<void>;
  /** Sends to every open connection (for events that are not a reply to anything). */
  broadcast(message: Json): void;
  /** Closes every connection and the server and removes the temp folder. */
  stop(): Promise<void>;
}

/** Creates a temp folder and returns a socket path in it (nothing listening yet). */
export async function makeSocketDir(socketName = 'fake.sock'): Promise<{ dir: string; socketPath: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'warmvm-fake-'));
  return { dir, socketPath: join(dir, socketName) };
}

/** Starts a fake on a fresh socket (or at `at`); stop() removes it. */
export async function startFakeServer(options: FakeServerOptions = {}, at?: { dir: string; socketPath: string }): Promise<FakeServer> {
  const { dir, socketPath } = at ?? (await makeSocketDir(options.socketName));
  const lineEnding = options.lineEnding ?? '\r\n';
  const requests: FakeRequest[] = [];
  const rawReceived: Buffer[] = [];
  const sockets = new Set<Socket>();
  const requestWaiters = new Set<() => void>();
  let connections = 0;

  const server: Server = createServer((socket) => {
    connections += 1;
    sockets.add(socket);
    const received: Buffer[] = [];
    rawReceived.push(Buffer.alloc(0));
    const index = rawReceived.length - 1;
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});

    const peer: FakePeer = {
      send: (message) => write(socket, JSON.stringify(message) + lineEnding),
      sendRaw: (data) => write(socket, data),
      reply: (request, value) => peer.send(request.id === undefined ? { return: value } : { return: value, id: request.id }),
      fail: (request, errorClass, desc) => peer.send(request.id === undefined ? { error: { class: errorClass, desc } } : { error: { class: errorClass, desc }, id: request.id }),
      event: (name, data) => peer.send({ event: name, ...(data === undefined ? {} : { data }), timestamp: { seconds: 1700000000, microseconds: 42 } }),
      hangUp: () => socket.destroy(),
    };

    if (typeof options.greeting === 'string') peer.sendRaw(options.greeting);
    else if (options.greeting) peer.send(options.greeting);
    options.onConnect?.(peer);

    let pendingLine: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      rawReceived[index] = Buffer.concat(received);
      let start = 0;
      for (let i = 0; i < chunk.length; i += 1) {
        // The guest agent's parser resets on 0xFF; so does this one.
        if (chunk[i] === 0xff) {
          pendingLine = [];
          start = i + 1;
        } else if (chunk[i] === 0x0a) {
          pendingLine.push(chunk.subarray(start, i));
          const text = Buffer.concat(pendingLine).toString('utf8').trim();
          pendingLine = [];
          start = i + 1;
          if (text !== '') handleLine(text, peer);
        }
      }
      if (start < chunk.length) pendingLine.push(chunk.subarray(start));
    });
  });

  const handleLine = (text: string, peer: FakePeer): void => {
    const raw = JSON.parse(text) as Json;
    const request: FakeRequest = {
      execute: String(raw.execute),
      arguments: raw.arguments as Json | undefined,
      id: raw.id,
      raw,
    };
    requests.push(request);
    for (const wake of [...requestWaiters]) wake();
    const handler = options.commands?.[request.execute] ?? defaultHandler;
    handler(request, peer);
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });

  return {
    socketPath,
    dir,
    requests,
    rawReceived,
    connectionCount: () => connections,
    openConnections: () => sockets.size,
    waitForRequests: (count, timeoutMs = 2000) =>
      new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (requests.length < count) return;
          requestWaiters.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          requestWaiters.delete(check);
          reject(new Error(`fake server saw ${requests.length} requests, expected ${count}`));
        }, timeoutMs);
        requestWaiters.add(check);
        check();
      }),
    broadcast: (message) => {
      for (const socket of sockets) write(socket, JSON.stringify(message) + lineEnding);
    },
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const defaultHandler: CommandHandler = (request, peer) => {
  peer.fail(request, 'CommandNotFound', `The command ${request.execute} has not been found`);
};

function write(socket: Socket, data: string | Buffer): void {
  if (!socket.destroyed) socket.write(data);
}
