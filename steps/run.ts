import type { Logger } from '../adapters/support/logger.js';
import type { BootFiles } from '../adapters/guest/boot-files.js';
import type { Exchange } from '../adapters/trace/record.js';
import type { InstanceLock } from '../adapters/instance/lock.js';
import type { InstancePaths } from '../adapters/instance/paths.js';
import type { SuspendPaths, SuspendRecord } from '../adapters/instance/suspended.js';
import type { LaunchPlan } from '../adapters/qemu/argv.js';
import type { QemuInfo } from '../adapters/qemu/binary.js';
import type { SnapshotManifest } from '../adapters/snapshot/manifest.js';
import type { SnapshotPaths } from '../adapters/snapshot/store.js';
import type { VmSpec } from '../adapters/spec/vm.js';
import type { CleanupStack } from '../adapters/support/cleanup.js';
import { WarmvmError } from '../adapters/support/errors.js';
import type { VmRunner } from '../adapters/vm/runner.js';
import type { Progress } from '../shapes/progress.js';

/** A guest port and the host port forwarded to it. */
export interface Forward {
  guest: number;
  host: number;
}

/**
 * What one `start` (or `capture`) learns as it goes: QEMU, the image, the accelerator, the ports,
 * the snapshot, and which QEMU of the run is which. Each machine's steps read and fill it; the
 * machines never see it.
 */
export interface Run {
  readonly spec: VmSpec;
  readonly paths: InstancePaths;
  readonly home: string;
  readonly cleanup: CleanupStack;
  readonly logger: Logger;
  readonly progress: Progress;
  /** The config's snapshot, known once the image is (the config key hashes it). */
  snapshot?: SnapshotPaths;
  /** The snapshot a resume runs from, its folder held open (pinSnapshot): one snapshot's files, whatever is renamed meanwhile. */
  pinned?: SnapshotPaths;
  /** Held while this run captures its config's snapshot: no other start captures it at once. */
  captureLock?: InstanceLock;
  /** Epoch ms the run's trace began at: exchanges are timed from it, like trace entries. */
  readonly clockStart: number;
  readonly exchangeListeners: ((exchange: Exchange) => void)[];
  qemu?: QemuInfo;
  boot?: BootFiles;
  accel?: { accel: LaunchPlan['accel']; reason: string };
  forwards: Forward[];
  manifest?: SnapshotManifest;
  /** The cold boot's QEMU (or, for `warmvm capture`, the running one it adopted). */
  cold?: VmRunner;
  /** The resume's QEMU. */
  resumed?: VmRunner;
  /** The cold boot's memory file on its way to the disk, from the moment the capture paused the vCPUs. */
  memoryFlush?: Promise<void>;
  /** The snapshot being stored, while it is: recovering waits for it, so a store cut short never publishes behind it. */
  storing?: Promise<unknown>;
  /** The capture being written beside the store, until it is renamed into place. */
  captureDir?: string;
  /** `warmvm capture` adopted a QEMU the user started: a failed capture lets it run on. */
  adopted: boolean;
  /** The suspended state this start wakes, from the moment it was judged wakeable until it ends healthy or is set aside. */
  suspended?: { paths: SuspendPaths; record: SuspendRecord };
}

export interface RunOptions {
  spec: VmSpec;
  paths: InstancePaths;
  home: string;
  cleanup: CleanupStack;
  logger: Logger;
  progress: Progress;
  startedAt?: number;
}

export function createRun(options: RunOptions): Run {
  return {
    spec: options.spec,
    paths: options.paths,
    home: options.home,
    cleanup: options.cleanup,
    logger: options.logger,
    progress: options.progress,
    clockStart: options.startedAt ?? Date.now(),
    exchangeListeners: [],
    forwards: [],
    adopted: false,
  };
}

/** A fact an earlier step must have learnt; its absence is a bug in the order of the steps. */
export function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new WarmvmError('E_STATE', `${what} is not known yet at this point of the start`, { hint: 'this is a warmvm bug; please report it' });
  return value;
}

/** The last exchanges with QEMU, the agent and the health checks, for the trace and inspector. Secret-free. */
export function onExchange(run: Run, listener: (exchange: Exchange) => void): void {
  run.exchangeListeners.push(listener);
}

export function emitExchange(run: Run, exchange: Omit<Exchange, 'at'>): void {
  for (const listener of run.exchangeListeners) listener({ at: Date.now() - run.clockStart, ...exchange });
}
