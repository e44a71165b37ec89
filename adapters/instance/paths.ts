import { chmod, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { WarmvmError } from '../support/errors.js';
import { systemErrorFix } from '../support/system-error.js';

export interface HomePaths {
  home: string;
  images: string;
  snapshots: string;
  instances: string;
}

export interface InstancePaths {
  name: string;
  dir: string;
  qmpSocket: string;
  qgaSocket: string;
  pidFile: string;
  lockFile: string;
  /** Held by a `warmvm exec` while it talks to the guest agent: the agent's socket takes one client at a time. */
  agentLockFile: string;
  stateFile: string;
  serialLog: string;
  qemuLog: string;
  /** The output of the background seal that records a capture's memory checksum (seal.ts). */
  sealLog: string;
  traceFile: string;
  overlay: string;
  /** The fresh secrets of the running VM, for the user only (mode 0600). */
  secretsFile: string;
  /** The settings disk (ISO, label warmvm-rt) written at every launch when the config has settings. */
  runtimeIso: string;
  /** A cold-booted guest's RAM, written through to disk so a capture keeps it without copying. */
  memoryFile: string;
  /** The config key of the snapshot this instance last ran from or captured: what `reset --snapshot` removes. */
  snapshotKeyFile: string;
}

/** sun_path is 108 bytes on Linux, 104 on macOS; keep the smaller. */
const MAX_SOCKET_PATH = 103;
const INSTANCE_NAME = /^[a-z0-9][a-z0-9_.-]{0,62}$/i;

/** `$WARMVM_HOME`, else `~/.warmvm`. */
export function resolveHome(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.WARMVM_HOME;
  if (fromEnv !== undefined && fromEnv.trim() !== '') return resolve(fromEnv);
  return join(homedir(), '.warmvm');
}

export function homePaths(home: string): HomePaths {
  return { home, images: join(home, 'images'), snapshots: join(home, 'snapshots'), instances: join(home, 'instances') };
}

export function validateInstanceName(name: string): string {
  if (!INSTANCE_NAME.test(name)) {
    throw new WarmvmError('E_BAD_NAME', `instance name "${name}" is not valid`, {
      hint: 'use 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit',
    });
  }
  return name;
}

export function instancePaths(home: string, name: string): InstancePaths {
  const dir = join(homePaths(home).instances, validateInstanceName(name));
  return {
    name,
    dir,
    qmpSocket: join(dir, 'qmp.sock'),
    qgaSocket: join(dir, 'qga.sock'),
    pidFile: join(dir, 'qemu.pid'),
    lockFile: join(dir, 'start.lock'),
    agentLockFile: join(dir, 'agent.lock'),
    stateFile: join(dir, 'state.json'),
    serialLog: join(dir, 'serial.log'),
    qemuLog: join(dir, 'qemu.log'),
    sealLog: join(dir, 'seal.log'),
    traceFile: join(dir, 'trace.jsonl'),
    overlay: join(dir, 'disk.qcow2'),
    secretsFile: join(dir, 'secrets.env'),
    runtimeIso: join(dir, 'runtime.iso'),
    memoryFile: join(dir, 'mem.raw'),
    snapshotKeyFile: join(dir, 'snapshot-key'),
  };
}

/**
 * Creates the home's folders when missing and proves the home writable, so a bad
 * `$WARMVM_HOME` fails here with its fix rather than later inside QEMU.
 */
export async function ensureHome(home: string): Promise<HomePaths> {
  const paths = homePaths(home);
  const existing = await stat(home).catch(() => undefined);
  if (existing && !existing.isDirectory()) {
    throw new WarmvmError('E_HOME_NOT_DIR', `warmvm home ${home} exists but is not a folder`, {
      hint: 'point WARMVM_HOME at a folder, or move that file away',
    });
  }
  try {
    await mkdir(paths.home, { recursive: true, mode: 0o700 });
    // warmvm's own folders are its user's alone, even in a home an older warmvm made (0755):
    // whatever lies under them (guest memory, disks, secrets, sockets) is then out of others' reach.
    for (const dir of [paths.images, paths.snapshots, paths.instances]) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      if (((await stat(dir)).mode & 0o077) !== 0) await chmod(dir, 0o700);
    }
    // Write for real: permission bits say nothing to root, and a read-only mount says nothing to access().
    const probe = join(home, `.write-probe-${process.pid}`);
    await writeFile(probe, '');
    await rm(probe);
  } catch (cause) {
    throw new WarmvmError('E_HOME_UNWRITABLE', `warmvm home ${home} cannot be written`, {
      hint: systemErrorFix(cause, home, 'set WARMVM_HOME to a folder you can write, or fix its permissions'),
      cause,
    });
  }
  return paths;
}

export async function ensureInstanceDir(home: string, name: string): Promise<InstancePaths> {
  await ensureHome(home);
  const paths = instancePaths(home, name);
  if (paths.qmpSocket.length > MAX_SOCKET_PATH) {
    throw new WarmvmError('E_PATH_TOO_LONG', `the instance folder ${paths.dir} is too deep for a unix socket path`, {
      hint: `unix sockets allow ${MAX_SOCKET_PATH} bytes: set WARMVM_HOME to a shorter path`,
    });
  }
  await mkdir(paths.dir, { recursive: true });
  return paths;
}
