import { createHash } from 'node:crypto';

/** What a snapshot was taken with; a resume refuses a snapshot whose manifest does not match. */
export interface SnapshotManifest {
  format: 1;
  createdAt: string;
  instance: string;
  qemuVersion: string;
  /** Full versioned machine type, never an alias. */
  machineType: string;
  accel: string;
  cpuModel: string;
  cpus: number;
  memoryMb: number;
  /** QEMU's argv at capture, in order: a resume launches exactly this, plus -incoming defer. */
  argv: string[];
  specHash: string;
  /** Host ports the guest's forwards are bound to: part of the argv, so fixed by the snapshot. */
  forwards: { guest: number; host: number }[];
  files: {
    state: { name: string; apparentBytes: number; dataBytes: number; sha256: string };
    stateZst: { name: string; bytes: number; sha256: string };
    disk: { name: string; bytes: number } | undefined;
  };
}

/** The host facts a manifest must match. */
export interface HostFacts {
  qemuVersion: string;
  machineType: string;
  accel: string;
  cpuModel: string;
  specHash: string;
}

/** Hash of what the user asked for: any change to it makes old snapshots unusable. */
export function hashSpec(spec: unknown): string {
  return createHash('sha256').update(stableJson(spec)).digest('hex').slice(0, 16);
}

/** Why this manifest cannot be resumed here, or undefined when it can. */
export function manifestMismatch(manifest: SnapshotManifest, host: HostFacts): string | undefined {
  const checks: [string, string, string][] = [
    ['QEMU version', manifest.qemuVersion, host.qemuVersion],
    ['machine type', manifest.machineType, host.machineType],
    ['accelerator', manifest.accel, host.accel],
    ['CPU model', manifest.cpuModel, host.cpuModel],
    ['spec', manifest.specHash, host.specHash],
  ];
  for (const [what, captured, now] of checks) {
    if (captured !== now) return `the snapshot's ${what} is ${captured}, this host's is ${now}`;
  }
  return undefined;
}

export function parseManifest(text: string): SnapshotManifest {
  const value = JSON.parse(text) as Partial<SnapshotManifest>;
  if (value.format !== 1 || !Array.isArray(value.argv) || typeof value.qemuVersion !== 'string' || !value.files?.state) {
    throw new Error('manifest.json is not a warmvm snapshot manifest (format 1)');
  }
  return value as SnapshotManifest;
}

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
      .map((key) => `${JSON.stringify(key)}:${stableJson((value as Record<string, unknown>)[key])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
