import { startFakeServer, type FakeServer, type FakeServerOptions, type Json } from './fake-json-lines-server.js';

/** A QEMU stand-in for QMP on a real unix socket (fake-json-lines-server.ts with QEMU's manners). */

/** The greeting of QEMU 10.0.2 as Debian builds it. */
export const QEMU_GREETING: Json = {
  QMP: {
    version: { qemu: { micro: 2, minor: 0, major: 10 }, package: 'Debian 1:10.0.2+ds-1~bpo12+1' },
    capabilities: ['oob'],
  },
};

/** A QEMU-like fake: greets, accepts qmp_capabilities, then runs `commands`. */
export function startFakeQmpServer(options: Omit<FakeServerOptions, 'lineEnding'> = {}, at?: { dir: string; socketPath: string }): Promise<FakeServer> {
  return startFakeServer(
    {
      greeting: QEMU_GREETING,
      ...options,
      commands: { qmp_capabilities: (request, peer) => peer.reply(request, {}), ...options.commands },
    },
    at,
  );
}
