import { WarmvmError, abortError } from '../support/errors.js';
import type { QmpClient } from './protocol/qmp-client.js';
import { sleep } from '../support/sleep.js';

/**
 * The QMP commands a start sends beyond the protocol itself: the vCPUs paused and continued, the
 * state migrated to and from a file, and quit. Steps call these; none sends raw QMP of its own.
 */

export interface MigrationOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  pollMs?: number;
}

export interface MigrationProgress {
  status: string;
  transferredBytes: number | undefined;
  totalBytes: number | undefined;
}

interface QueryMigrate {
  status?: string;
  'error-desc'?: string;
  ram?: { transferred?: number; total?: number };
}

/**
 * Where the guest's RAM goes. `file`: x-ignore-shared leaves out of the stream every RAM block
 * backed by a shared file, so the RAM stays in its memory file and the stream holds the devices
 * and the small ROM blocks (no mapped-ram: on QEMU 10.0.2 it fails together with x-ignore-shared).
 * `stream`: the RAM is written into the stream, for a suspend, whose RAM is the instance's own
 * (a clone's private pages are in no file); mapped-ram puts each page at its own offset, so
 * zero pages stay holes, and multifd writes and loads it on several channels. Both ends set the same.
 */
export type RamIn = 'file' | 'stream';

const CAPABILITIES: Record<RamIn, { capability: string; state: boolean }[]> = {
  file: [{ capability: 'x-ignore-shared', state: true }],
  // Every one named: a clone's QEMU keeps the x-ignore-shared its own resume set.
  stream: [
    { capability: 'x-ignore-shared', state: false },
    { capability: 'mapped-ram', state: true },
    { capability: 'multifd', state: true },
  ],
};

async function setCapabilities(qmp: QmpClient, ram: RamIn, signal: AbortSignal | undefined): Promise<void> {
  await qmp.execute('migrate-set-capabilities', { capabilities: CAPABILITIES[ram] }, { signal });
}

/** stop → capabilities → `migrate file:` → poll until completed. The VM stays paused. */
export async function captureToFile(
  qmp: QmpClient,
  file: string,
  options: MigrationOptions & { onProgress?: (progress: MigrationProgress) => void; ram?: RamIn },
): Promise<{ ms: number; status: 'completed' }> {
  const started = Date.now();
  const status = await qmp.execute<{ status: string }>('query-status', undefined, { signal: options.signal });
  if (status.status === 'running') await qmp.execute('stop', undefined, { signal: options.signal });
  await setCapabilities(qmp, options.ram ?? 'file', options.signal);
  await qmp.execute('migrate', { uri: `file:${file}` }, { signal: options.signal });
  await pollMigration(qmp, 'capture', options, (state) => {
    options.onProgress?.({ status: state.status ?? 'unknown', transferredBytes: state.ram?.transferred, totalBytes: state.ram?.total });
    return state.status === 'completed';
  });
  return { ms: Date.now() - started, status: 'completed' };
}

/**
 * For a QEMU launched with `-incoming defer`: load the state file, and wait until QEMU's runstate
 * is `paused`. Migration status `none` means nothing has started yet; it is never taken for done.
 */
export async function incomingFromFile(qmp: QmpClient, file: string, options: MigrationOptions & { ram?: RamIn }): Promise<{ runstate: string; ms: number }> {
  const started = Date.now();
  await setCapabilities(qmp, options.ram ?? 'file', options.signal);
  await qmp.execute('migrate-incoming', { uri: `file:${file}` }, { signal: options.signal });
  let runstate = 'unknown';
  await pollMigration(qmp, 'incoming', options, async (state) => {
    if (state.status !== 'completed') return false;
    runstate = (await qmp.execute<{ status: string }>('query-status', undefined, { signal: options.signal })).status;
    // The source was paused when captured, so the destination stays paused once loaded.
    return runstate !== 'inmigrate';
  });
  return { runstate, ms: Date.now() - started };
}

/** `cont`, then the RESUME event and runstate `running`. The event comes before cont's reply. */
export async function resumeVcpus(qmp: QmpClient, options: MigrationOptions): Promise<void> {
  const resumed = qmp.waitForEvent('RESUME', { timeoutMs: options.timeoutMs, signal: options.signal });
  resumed.catch(() => undefined);
  await qmp.execute('cont', undefined, { signal: options.signal });
  await resumed;
  const status = await qmp.execute<{ status: string }>('query-status', undefined, { signal: options.signal });
  if (status.status !== 'running') {
    throw new WarmvmError('E_NOT_RUNNING', `after cont QEMU's runstate is "${status.status}", not "running"`, { hint: 'see qemu.log in the instance folder' });
  }
}

/** `stop` (the vCPUs paused for a capture), then the runstate QEMU reports. */
export async function pauseVcpus(qmp: QmpClient, options: { signal?: AbortSignal }): Promise<string> {
  await qmp.execute('stop', undefined, { signal: options.signal });
  return (await qmp.execute<{ status: string }>('query-status', undefined, { signal: options.signal })).status;
}

/** A bare `cont`, for a VM a failed capture paused: true when QEMU took it. No RESUME is awaited (it may already run). */
export async function continueVcpus(qmp: QmpClient, options: { timeoutMs: number }): Promise<boolean> {
  return await qmp.execute('cont', undefined, { timeoutMs: options.timeoutMs }).then(
    () => true,
    () => false,
  );
}

/** Migration states in which QEMU still writes the stream (`migrate_cancel` ends them). */
const MIGRATING = new Set(['setup', 'active', 'cancelling', 'device', 'pre-switchover', 'wait-unplug']);

/**
 * After a migration to file failed or was cut short with the vCPUs stopped (a capture or a suspend
 * on a full disk, a passed bound, Ctrl-C): the migration is cancelled if it still runs, then the
 * vCPUs run again. Resolves with the runstate QEMU reports.
 */
export async function continueAfterFailedMigration(qmp: QmpClient, options: MigrationOptions): Promise<string> {
  const deadline = Date.now() + options.timeoutMs;
  const call = { timeoutMs: options.timeoutMs, signal: options.signal };
  await qmp.execute('migrate_cancel', undefined, call);
  for (let pause = 5; MIGRATING.has((await qmp.execute<QueryMigrate>('query-migrate', undefined, call)).status ?? ''); pause = Math.min(pause * 2, 100)) {
    if (Date.now() > deadline)
      throw new WarmvmError('E_MIGRATION_TIMEOUT', `the failed capture's migration was not cancelled within ${options.timeoutMs} ms`, { hint: 'see qemu.log' });
    await sleep(pause, options.signal);
  }
  await qmp.execute('cont', undefined, call);
  return (await qmp.execute<{ status: string }>('query-status', undefined, call)).status;
}

/** `quit`; QEMU may hang up before or after its reply, both are fine. */
export async function quit(qmp: QmpClient, options: MigrationOptions): Promise<void> {
  try {
    await qmp.execute('quit', undefined, { timeoutMs: options.timeoutMs, signal: options.signal });
  } catch (error) {
    if ((error as { code?: string }).code !== 'E_QMP_DISCONNECTED') throw error;
  }
}

async function pollMigration(qmp: QmpClient, what: 'capture' | 'incoming', options: MigrationOptions, done: (state: QueryMigrate) => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  let pause = options.pollMs ?? 5;
  let last: QueryMigrate = {};
  for (;;) {
    if (options.signal?.aborted) throw abortError(options.signal, `the ${what} migration`);
    last = await qmp.execute<QueryMigrate>('query-migrate', undefined, { signal: options.signal });
    if (last.status === 'failed' || last.status === 'cancelled') {
      throw new WarmvmError(
        what === 'incoming' ? 'E_MIGRATION_INCOMING' : 'E_MIGRATION',
        `the ${what} migration ${last.status}${last['error-desc'] ? `: ${last['error-desc']}` : ''}`,
        { hint: what === 'incoming' ? 'the snapshot cannot be loaded; it is set aside and captured anew' : 'check the free disk space of the warmvm home; see qemu.log' },
      );
    }
    if (await done(last)) return;
    if (Date.now() > deadline) {
      throw new WarmvmError('E_MIGRATION_TIMEOUT', `the ${what} migration did not finish within ${options.timeoutMs} ms (last status: ${last.status ?? 'none'})`, {
        hint: 'see qemu.log in the instance folder',
      });
    }
    await sleep(pause, options.signal);
    pause = Math.min(pause * 2, 50);
  }
}
