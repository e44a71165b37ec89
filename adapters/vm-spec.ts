/** What the user asks for: a guest, its size, its ports and how to tell it is healthy. */

export type AccelChoice = 'auto' | 'kvm' | 'tcg' | 'hvf';
export type Accel = Exclude<AccelChoice, 'auto'>;

export type BootSource =
  | { kind: 'demo' }
  | { kind: 'kernel'; kernel: string; initrd: string | undefined; append: string | undefined }
  | { kind: 'disk'; path: string; format: 'qcow2' | 'raw'; kernel: string | undefined; initrd: string | undefined; append: string | undefined };

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
  bounds: Bounds;
}

export const DEMO_ROTATION: RotationSpec = {
  command: '/usr/local/bin/rotate-secrets',
  names: ['API_KEY', 'DB_PASSWORD', 'SESSION_SECRET', 'WEBHOOK_SECRET'],
};

export const DEMO_GUEST_PORT = 8080;

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
    // TCG on a shared 2-core machine: the demo guest boots in ~4 s and resumes in ~0.3 s,
    // so these leave wide room.
    bounds: { launchMs: 10_000, bootMs: 120_000, healthMs: 60_000, stopMs: 10_000, incomingMs: 60_000, rotateMs: 30_000, captureMs: 300_000 },
  };
}
