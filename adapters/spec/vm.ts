/** What the user asks for: a guest, its size, its ports and how to tell it is healthy. */

export type AccelChoice = 'auto' | 'kvm' | 'tcg' | 'hvf';
export type Accel = Exclude<AccelChoice, 'auto'>;

export type BootSource =
  | { kind: 'demo' }
  | { kind: 'kernel'; kernel: string; initrd: string | undefined; append: string | undefined }
  | { kind: 'profile'; profile: GuestProfile }
  | {
      kind: 'disk';
      path: string;
      format: 'qcow2' | 'raw';
      kernel: string | undefined;
      initrd: string | undefined;
      append: string | undefined;
      /** cloud-init NoCloud files, written on a seed ISO (label cidata) attached at every launch. */
      userData: string | undefined;
      metaData: string | undefined;
    }
  | {
      kind: 'url';
      /** http(s) address of a qcow2 or raw disk image, maybe xz- or zstd-compressed; downloaded once into the home's images/ by digest. */
      url: string;
      digest: { algorithm: 'sha256' | 'sha512'; hex: string };
      format: 'qcow2' | 'raw';
      compression: 'xz' | 'zstd' | undefined;
      kernel: string | undefined;
      initrd: string | undefined;
      append: string | undefined;
      userData: string | undefined;
      metaData: string | undefined;
    };

/** Guests warmvm builds itself: `debian` is Debian 12 with cloud-init and a docker workload. */
export type GuestProfile = 'debian';
export const GUEST_PROFILES: readonly GuestProfile[] = ['debian'];

export interface PortForward {
  guest: number;
  /** A fixed host port; undefined takes a free one at start. */
  host: number | undefined;
}

export interface HealthCheckSpec {
  /** The guest port; it must be one of `ports`. */
  port: number;
  path: string;
  status: number;
}

export interface Bounds {
  launchMs: number;
  bootMs: number;
  healthMs: number;
  stopMs: number;
  /** Resume: the incoming migration to runstate paused, and cont to running. */
  incomingMs: number;
  rotateMs: number;
  /** Capture: the migration to file, and storing it. */
  captureMs: number;
}

export interface RotationSpec {
  /** Guest command reading `NAME=hex` lines on stdin. */
  command: string;
  names: string[];
}

export interface VmSpec {
  memoryMb: number;
  cpus: number;
  accel: AccelChoice;
  cpuModel: string | undefined;
  boot: BootSource;
  ports: PortForward[];
  health: HealthCheckSpec[];
  /** Whether the guest runs the QEMU guest agent (booting waits for it to answer). */
  agent: boolean;
  /** How the guest takes fresh secrets; undefined: the guest has none to rotate. */
  rotation: RotationSpec | undefined;
  /**
   * A line the guest prints on its serial console once it is ready (provisioning finished, the
   * workload up): a cold boot waits for it before probing health, so a capture never freezes a
   * guest halfway through cloud-init. Undefined: the agent's answer is enough.
   */
  readyMarker: string | undefined;
  /**
   * Settings for the guest (NAME → one-line value), written at every launch on a small ISO
   * labelled `warmvm-rt` that the guest reads when it boots. Not for secrets: the disk is a file
   * in the instance folder. Undefined: no such disk is attached.
   */
  settings: Record<string, string> | undefined;
  /** Where a start with no local snapshot of this config pulls one from (`HOST[:PORT]/REPO[:TAG|@DIGEST]`); undefined: it captures its own. */
  snapshotPull: string | undefined;
  bounds: Bounds;
}

export const DEMO_ROTATION: RotationSpec = {
  command: '/usr/local/bin/rotate-secrets',
  names: ['API_KEY', 'DB_PASSWORD', 'SESSION_SECRET', 'WEBHOOK_SECRET'],
};

export const DEMO_GUEST_PORT = 8080;

/** The Debian profile's hook: stdin goes to `docker exec -i` of the container's rotate-secrets. */
export const DEBIAN_ROTATION: RotationSpec = { command: '/usr/local/bin/warmvm-rotate', names: DEMO_ROTATION.names };

export function defaultSpec(): VmSpec {
  return {
    memoryMb: 256,
    cpus: 1,
    accel: 'auto',
    cpuModel: undefined,
    boot: { kind: 'demo' },
    ports: [{ guest: DEMO_GUEST_PORT, host: undefined }],
    health: [{ port: DEMO_GUEST_PORT, path: '/health', status: 200 }],
    agent: true,
    rotation: DEMO_ROTATION,
    readyMarker: undefined,
    settings: undefined,
    snapshotPull: undefined,
    // TCG on a shared 2-core machine: the demo guest boots in ~4 s and resumes in ~0.3 s,
    // so these leave wide room.
    bounds: { launchMs: 10_000, bootMs: 120_000, healthMs: 60_000, stopMs: 10_000, incomingMs: 60_000, rotateMs: 30_000, captureMs: 300_000 },
  };
}

/**
 * A profile's defaults: the Debian guest needs room for systemd and docker, and its first boot
 * under TCG takes minutes (systemd, dockerd, the container).
 */
export function profileSpec(profile: GuestProfile): VmSpec {
  const spec = defaultSpec();
  spec.boot = { kind: 'profile', profile };
  spec.memoryMb = 1024;
  spec.cpus = 2;
  spec.rotation = DEBIAN_ROTATION;
  spec.readyMarker = 'warmvm: workload healthy';
  spec.settings = {};
  spec.bounds = { ...spec.bounds, bootMs: 600_000, healthMs: 300_000, rotateMs: 60_000, stopMs: 30_000 };
  return spec;
}
