import { createServer } from 'node:net';
import { WarmvmError } from '../support/errors.js';

const LOOPBACK = '127.0.0.1';

/** A port the kernel says is free on 127.0.0.1 now (it may be taken again before QEMU binds it). */
export async function findFreePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function isPortFree(port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, LOOPBACK, () => server.close(() => resolve(true)));
  });
}

/** Throws a clear error when a port the user asked for is taken. */
export async function assertPortFree(port: number, what: string): Promise<void> {
  if (await isPortFree(port)) return;
  throw new WarmvmError('E_PORT_TAKEN', `host port ${port} (${what}) is already in use on ${LOOPBACK}`, {
    hint: `stop what listens on ${port} (see: ss -ltnp 'sport = :${port}'), or pick another host port in the config, or leave it out to get a free one`,
  });
}
