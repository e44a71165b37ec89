import { createConnection } from 'node:net';
import type { InspectionEvent } from 'xstate';

/** A connection to Stately's inspector: pass `inspect` to createActor, `stop` when the run ends. */
export interface StatelyInspector {
  inspect: (event: InspectionEvent) => void;
  stop(): void;
}

/**
 * Forwards inspection events to a `@statelyai/inspect` WebSocket server. Its known faults are
 * guarded: with no server it retries forever and keeps the process alive, so the server must
 * answer a TCP connect first, or this returns undefined; warmvm's commands exit explicitly, so a
 * socket it leaves behind cannot hold the process.
 */
export async function connectStatelyInspector(url: string, probeMs = 1_000): Promise<StatelyInspector | undefined> {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return undefined;
  }
  const port = Number(target.port || (target.protocol === 'wss:' ? 443 : 80));
  if (!(await answers(target.hostname, port, probeMs))) return undefined;
  const { createWebSocketInspector } = await import('@statelyai/inspect');
  const inspector = createWebSocketInspector({ url });
  return {
    inspect: (event) => inspector.inspect.next?.(event),
    stop: () => inspector.adapter.stop(),
  };
}

function answers(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}
