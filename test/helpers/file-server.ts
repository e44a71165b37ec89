import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

/** One request as the server saw it. */
export interface SeenRequest {
  path: string;
  range: string | undefined;
  ifRange: string | undefined;
  status: number;
}

/**
 * How the server behaves; the test changes it between requests. `file` is served at every path
 * with an ETag, honouring `Range` (and `If-Range` against the ETag) unless told not to.
 */
export interface FileServerBehaviour {
  file: string;
  etag: string;
  ignoreRange: boolean;
  /** The next responses cut after this many body bytes (the socket destroyed), one entry per response. */
  cuts: number[];
  /** The next responses answer with these statuses instead, one entry per response. */
  statuses: number[];
  /** Before the body's second half of the next response, this is awaited (a download held midway). */
  hold: Promise<void> | undefined;
}

export interface FileServer {
  url(path: string): string;
  readonly requests: SeenRequest[];
  readonly behaviour: FileServerBehaviour;
  close(): Promise<void>;
}

/**
 * A real HTTP (or HTTPS, given a key and certificate) server on 127.0.0.1 serving one file, for
 * the image downloader's tests: it can cut a response midway, ignore Range, answer 5xx, or hold
 * a response until told.
 */
export async function startFileServer(file: string, options: { etag?: string; tls?: { key: string; cert: string } } = {}): Promise<FileServer> {
  const behaviour: FileServerBehaviour = { file, etag: options.etag ?? '"v1"', ignoreRange: false, cuts: [], statuses: [], hold: undefined };
  const requests: SeenRequest[] = [];
  const sockets = new Set<import('node:net').Socket>();
  const handler = (request: IncomingMessage, response: ServerResponse) => {
    void serve(behaviour, request, response, requests).catch(() => response.destroy());
  };
  const server: Server = options.tls ? createHttpsServer(options.tls, handler) : createHttpServer(handler);
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (path) => `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}${path}`,
    requests,
    behaviour,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function serve(behaviour: FileServerBehaviour, request: IncomingMessage, response: ServerResponse, requests: SeenRequest[]): Promise<void> {
  const size = (await stat(behaviour.file)).size;
  const range = header(request, 'range');
  const ifRange = header(request, 'if-range');
  const seen: SeenRequest = { path: request.url ?? '', range, ifRange, status: 0 };
  requests.push(seen);
  const status = behaviour.statuses.shift();
  if (status !== undefined) {
    seen.status = status;
    response.writeHead(status, { 'content-type': 'text/plain' }).end(`status ${status}\n`);
    return;
  }
  const from = Number(/^bytes=(\d+)-$/.exec(range ?? '')?.[1] ?? Number.NaN);
  const partial = !behaviour.ignoreRange && Number.isInteger(from) && (ifRange === undefined || ifRange === behaviour.etag);
  if (partial && from >= size) {
    seen.status = 416;
    response.writeHead(416, { 'content-range': `bytes */${size}` }).end();
    return;
  }
  const start = partial ? from : 0;
  seen.status = partial ? 206 : 200;
  response.writeHead(seen.status, {
    'content-length': String(size - start),
    etag: behaviour.etag,
    'accept-ranges': behaviour.ignoreRange ? 'none' : 'bytes',
    ...(partial ? { 'content-range': `bytes ${start}-${size - 1}/${size}` } : {}),
  });
  const cut = behaviour.cuts.shift();
  const hold = behaviour.hold;
  behaviour.hold = undefined;
  const middle = cut ?? (hold ? start + Math.floor((size - start) / 2) : undefined);
  if (middle !== undefined) {
    await pipeRange(behaviour.file, start, Math.min(size, start + (cut ?? middle - start)), response);
    if (cut !== undefined) {
      // What was written reaches the client, then the connection goes: a cut download.
      await new Promise<void>((resolve) => response.write('', () => resolve()));
      response.socket?.destroy();
      return;
    }
    await hold;
    await pipeRange(behaviour.file, middle, size, response);
  } else {
    await pipeRange(behaviour.file, start, size, response);
  }
  response.end();
}

/** Bytes [from, to) of the file written to the response, which stays open. */
async function pipeRange(file: string, from: number, to: number, response: ServerResponse): Promise<void> {
  if (to <= from) return;
  for await (const chunk of createReadStream(file, { start: from, end: to - 1 })) {
    if (response.destroyed) return;
    if (!response.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          response.off('drain', done);
          response.off('close', done);
          resolve();
        };
        response.on('drain', done);
        response.on('close', done);
      });
    }
  }
}

function header(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
