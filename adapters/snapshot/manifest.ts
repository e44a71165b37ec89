import { createHash } from 'node:crypto';

/** The snapshot format this warmvm writes and resumes: a memory file mapped lazily beside a device-state stream. */
export const SNAPSHOT_FORMAT = 2;

/** One file of a snapshot, with its checksum (`xxh128-4m:…`, over 4 MiB chunks: see checksum.ts). */
export interface SnapshotFile {
  name: string;
  bytes: number;
  checksum: string;
}

/**
 * The guest's RAM file. Its checksum is recorded just after the capture publishes it (seal.ts), so
 * a capture waits only for the flush: until then `checksum` is absent, and the stamps taken at the
 * capture (verified.json) are what shows the file unchanged.
 */
export interface MemoryFile {
  name: string;
  bytes: number;
  dataBytes: number;
  checksum?: string;
}

/** A file of the snapshot as the manifest records it: the memory file's checksum may still be on its way. */
export type RecordedFile = SnapshotFile | MemoryFile;

/** What a snapshot was taken with; a resume refuses a snapshot whose manifest does not match. */
export interface SnapshotManifest {
  format: typeof SNAPSHOT_FORMAT;
  createdAt: string;
  /** The instance whose cold boot was captured; any instance with the same config resumes it. */
  capturedBy: string;
  qemuVersion: string;
  /** Full versioned machine type, never an alias. */
  machineType: string;
  accel: string;
  cpuModel: string;
  cpus: number;
  memoryMb: number;
  /** QEMU's argv at capture with each instance's own paths and ports left out (deviceArgv): a resume's must be the same. */
  deviceArgv: string[];
  specHash: string;
  /** What `specHash` hashes, to name what changed; settings only by digest. */
  spec: SpecFacts;
  files: {
    /** The guest's RAM: sparse, mode 0444, mapped by every clone and never written again. */
    memory: MemoryFile;
    /** The device state (a plain `file:` migration stream without the RAM): kilobytes. */
    state: SnapshotFile;
    /** The frozen disk overlay the RAM belongs to (disk guests); each clone runs on its own overlay over it. */
    disk: SnapshotFile | undefined;
  };
}

/**
 * Whether two manifests record one capture (a pulled copy of it included): its time, the instance
 * captured and the memory file's size, and its checksum where both record one. The memory
 * checksum alone cannot say it: it may not be recorded yet (seal.ts).
 */
export function sameCapture(a: SnapshotManifest, b: SnapshotManifest): boolean {
  const [ma, mb] = [a.files.memory, b.files.memory];
  return (
    a.createdAt === b.createdAt && a.capturedBy === b.capturedBy && ma.bytes === mb.bytes && (ma.checksum === undefined || mb.checksum === undefined || ma.checksum === mb.checksum)
  );
}

/** The manifest with the memory file's checksum recorded (seal.ts). */
export function withMemoryChecksum(manifest: SnapshotManifest, checksum: string): SnapshotManifest {
  return { ...manifest, files: { ...manifest.files, memory: { ...manifest.files.memory, checksum } } };
}

/** The host facts a manifest must match. */
export interface HostFacts {
  qemuVersion: string;
  machineType: string;
  accel: string;
  cpuModel: string;
  specHash: string;
  spec?: SpecFacts;
  deviceArgv: string[];
}

/** The parts of a spec a snapshot depends on, as kept in its manifest (no setting's value). */
export type SpecFacts = Record<string, unknown>;

/** What the manifest keeps of the hashed spec: every part as is, but settings by digest. */
export function specFacts(parts: Record<string, unknown>): SpecFacts {
  const { settings, ...rest } = parts;
  return settings === undefined ? rest : { ...rest, settings: `sha256:${hashSpec(settings)}` };
}

/** Longest value shown in a mismatch: an image description can be two paths. */
const SHOWN_VALUE_CHARS = 100;

/** Hash of what the user asked for: any change to it makes old snapshots unusable. */
export function hashSpec(spec: unknown): string {
  return createHash('sha256').update(stableJson(spec)).digest('hex').slice(0, 16);
}

/** What was recorded: a snapshot's manifest, or an instance's suspended state. */
export type RecordedState = 'snapshot' | 'suspended state';

/** Why this manifest (or a suspended state's record) cannot be resumed here, or undefined when it can. */
export function manifestMismatch(manifest: HostFacts, host: HostFacts, of: RecordedState = 'snapshot'): string | undefined {
  const checks: [string, string, string][] = [
    ['QEMU version', manifest.qemuVersion, host.qemuVersion],
    ['machine type', manifest.machineType, host.machineType],
    ['accelerator', manifest.accel, host.accel],
    ['CPU model', manifest.cpuModel, host.cpuModel],
    ['spec', manifest.specHash, host.specHash],
  ];
  for (const [what, captured, now] of checks) {
    if (captured !== now) {
      if (what === 'spec' && manifest.spec && host.spec) return specChange(manifest.spec, host.spec, of) ?? `the ${of}'s spec is ${captured}, this host's is ${now}`;
      return `the ${of}'s ${what} is ${captured}, this host's is ${now}`;
    }
  }
  if (JSON.stringify(manifest.deviceArgv) !== JSON.stringify(host.deviceArgv)) {
    return `the ${of}'s QEMU devices differ from the ones this warmvm launches (warmvm changed how it starts QEMU)`;
  }
  return undefined;
}

/** "the config changed since the capture: memoryMb 256 → 512, settings", or undefined when no part differs. */
function specChange(captured: SpecFacts, now: SpecFacts, of: RecordedState): string | undefined {
  const show = (value: unknown): string => {
    const text = value === undefined ? 'none' : typeof value === 'string' ? value : stableJson(value);
    return text.length > SHOWN_VALUE_CHARS ? `${text.slice(0, SHOWN_VALUE_CHARS - 1)}…` : text;
  };
  const changed = [...new Set([...Object.keys(captured), ...Object.keys(now)])]
    .sort()
    .filter((key) => stableJson(captured[key]) !== stableJson(now[key]))
    // A setting's value is never shown, only that the settings differ.
    .map((key) => (key === 'settings' ? key : `${key} ${show(captured[key])} → ${show(now[key])}`));
  return changed.length === 0 ? undefined : `the config changed since the ${of === 'snapshot' ? 'capture' : 'suspend'}: ${changed.join(', ')}`;
}

/** Earlier formats, named so that a snapshot set aside for its format says which it was. */
const OLD_FORMATS: Record<number, string> = { 1: 'format 1 (a compressed mapped-ram state that every resume read whole)' };

export function parseManifest(text: string): SnapshotManifest {
  const value = JSON.parse(text) as Partial<SnapshotManifest> & { format?: number };
  const old = typeof value.format === 'number' ? OLD_FORMATS[value.format] : undefined;
  if (old) throw new Error(`the snapshot is ${old}; this warmvm resumes format ${SNAPSHOT_FORMAT} (a memory file every clone maps lazily)`);
  if (value.format !== SNAPSHOT_FORMAT || !Array.isArray(value.deviceArgv) || typeof value.qemuVersion !== 'string' || !value.files?.memory || !value.files.state) {
    throw new Error(`manifest.json is not a warmvm snapshot manifest (format ${SNAPSHOT_FORMAT})`);
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
