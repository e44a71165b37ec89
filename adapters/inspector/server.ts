import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { WarmvmError } from '../support/errors.js';
import type { CompareMessage, InspectorMessage } from './protocol.js';
import { INSPECTOR_PAGE } from './page.js';

/** A running inspector server: where its page is, and how to send the page messages. */
export interface InspectorServer {
  /** The page, with its token: only someone given this URL can open it. */
  url: string;
  port: number;
  publish(message: InspectorMessage | CompareMessage): void;
  close(): Promise<void>;
}

/** A run's messages kept for pages opened late; past this, the oldest exchanges are dropped. */
const MAX_KEPT = 20_000;

/**
 * Serves the inspector on 127.0.0.1 only, under an unguessable token: the page, its messages as
 * server-sent events (everything so far, then live), and the same as JSON at `messages`. The
 * messages are secret-free by construction: trace entries and exchange summaries.
 */
export async function startInspectorServer(options: { port: number; page?: string }): Promise<InspectorServer> {
  const token = randomBytes(18).toString('base64url');
  const page = options.page ?? INSPECTOR_PAGE;
  const kept: (InspectorMessage | CompareMessage)[] = [];
  const streams = new Set<ServerResponse>();
  let hosts: Set<string> = new Set();
  const server = createServer((request, response) => {
    // A page of another site can make a browser ask 127.0.0.1 under its own name (DNS rebinding):
    // only the names this server is reached by directly are answered.
    if (!hosts.has((request.headers.host ?? '').toLowerCase())) {
      response.writeHead(421, { 'content-type': 'text/plain' }).end('misdirected request: use http://127.0.0.1 or http://localhost\n');
      return;
    }
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' || !path?.startsWith(`/${token}/`)) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    const rest = path.slice(token.length + 2);
    if (rest === '') {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(page);
    } else if (rest === 'elk.js') {
      elkSource().then(
        (source) => response.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'private, max-age=3600' }).end(source),
        (cause: unknown) =>
          response.writeHead(500, { 'content-type': 'text/plain' }).end(`the layout library elkjs cannot be read: ${cause instanceof Error ? cause.message : String(cause)}\n`),
      );
    } else if (rest === 'messages') {
      response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(kept));
    } else if (rest === 'events') {
      response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      for (const message of kept) response.write(frame(message));
      streams.add(response);
      request.on('close', () => streams.delete(response));
    } else {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (cause: NodeJS.ErrnoException) =>
      reject(
        new WarmvmError('E_INSPECT_PORT', `the inspector cannot listen on 127.0.0.1:${options.port}: ${cause.code === 'EADDRINUSE' ? 'the port is in use' : cause.message}`, {
          hint: 'pick another port with --inspect=PORT, or --inspect alone for any free one',
          cause,
        }),
      ),
    );
    server.listen(options.port, '127.0.0.1', () => resolve());
  });
  // Nothing of the inspector may keep warmvm alive once the command is done.
  server.unref();
  const port = (server.address() as { port: number }).port;
  hosts = new Set([`127.0.0.1:${port}`, `localhost:${port}`]);
  return {
    url: `http://127.0.0.1:${port}/${token}/`,
    port,
    publish(message) {
      kept.push(message);
      if (kept.length > MAX_KEPT) {
        const index = kept.findIndex((old) => old.kind === 'exchange');
        if (index >= 0) kept.splice(index, 1);
      }
      for (const stream of streams) stream.write(frame(message));
    },
    async close() {
      for (const stream of streams) stream.end();
      streams.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let elk: Promise<string> | undefined;

/**
 * elkjs's browser build, from the installed package (no CDN: the page works offline), read once on
 * the first request so a start with --inspect reads nothing until a page asks for it.
 */
function elkSource(): Promise<string> {
  elk ??= readFile(createRequire(import.meta.url).resolve('elkjs/lib/elk.bundled.js'), 'utf8');
  elk.catch(() => {
    elk = undefined;
  });
  return elk;
}

function frame(message: InspectorMessage | CompareMessage): string {
  return `data: ${JSON.stringify(message)}\n\n`;
}
