import { rm } from 'node:fs/promises';
import { afterEach } from 'vitest';
import { makeSocketDir } from './fake-json-lines-server.js';

/**
 * What the QMP and guest agent client tests share: fakes and clients closed after each test,
 * temp socket folders removed, a rejection caught as a value, and polling on real I/O.
 */

/** Something a test opened: a fake server (stop) or a client (close). */
type Closable = { stop(): Promise<unknown> } | { close(): Promise<unknown> };

/** Registers, for the calling test file, cleanups that run after each test, newest first. */
export function useCleanups(): {
  /** Runs `cleanup` after the current test. */
  defer(cleanup: () => Promise<unknown>): void;
  /** Stops or closes `resource` after the current test, and returns it. */
  keep<T extends Closable>(resource: T): T;
  /** A fresh folder with a socket path in it (nothing listening), removed after the current test. */
  socketDir(socketName?: string): Promise<{ dir: string; socketPath: string }>;
} {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  const defer = (cleanup: () => Promise<unknown>): void => {
    cleanups.push(cleanup);
  };
  return {
    defer,
    keep: (resource) => {
      defer(() => ('stop' in resource ? resource.stop() : resource.close()));
      return resource;
    },
    socketDir: async (socketName) => {
      const at = await makeSocketDir(socketName);
      defer(() => rm(at.dir, { recursive: true, force: true }));
      return at;
    },
  };
}

/** The error a promise rejects with; fails the test if it resolves. */
export async function caught(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(value)}`);
    },
    (error: unknown) => error,
  );
}

/** Polls `condition` every 5 ms of real time; throws after `timeoutMs`. */
export async function waitUntil(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
