import type { InstanceStatus } from '../../adapters/vm/control.js';
import { listInstances, listSnapshots, type SnapshotSummary } from '../../adapters/vm/instances.js';
import type { Output } from '../output.js';

const NONE = '—';

/** `warmvm list`: every instance (state, pid, path, snapshot, ports, health), then every snapshot and who runs from it. */
export async function listCommand(options: { home: string; output: Output }): Promise<number> {
  const instances = await listInstances(options.home);
  const snapshots = await listSnapshots(options.home, instances);
  options.output.result(
    { instances: instances.map(instanceJson), snapshots: snapshots.map(snapshotJson) },
    [...instanceLines(options.home, instances), '', ...snapshotLines(snapshots)].join('\n'),
  );
  return 0;
}

function instanceJson(instance: InstanceStatus): Record<string, unknown> {
  return {
    name: instance.name,
    state: instance.state,
    pid: instance.pid ?? null,
    path: instance.path ?? null,
    snapshot: instance.snapshot ?? null,
    ports: instance.forwards,
    health: instance.health.map((answer) => ({ url: answer.url, status: answer.status ?? null, expectStatus: answer.expectStatus })),
    startedAt: instance.startedAt ?? null,
    stale: instance.stale,
    ready: instance.ready,
    suspendedAt: instance.suspendedAt ?? null,
  };
}

function snapshotJson(snapshot: SnapshotSummary): Record<string, unknown> {
  return Object.fromEntries(Object.entries(snapshot).map(([field, value]) => [field, value ?? null]));
}

function instanceLines(home: string, instances: InstanceStatus[]): string[] {
  if (instances.length === 0) return [`no instances in ${home}/instances`];
  const rows = instances.map((instance) => [
    instance.name,
    instance.suspendedAt !== undefined
      ? 'suspended'
      : instance.state === 'running' && !instance.ready
        ? instance.busyWith === undefined
          ? 'unfinished'
          : 'starting'
        : instance.state,
    instance.pid === undefined ? NONE : String(instance.pid),
    instance.path ?? NONE,
    instance.snapshot ?? NONE,
    instance.forwards.length === 0 ? NONE : instance.forwards.map((forward) => `${forward.host}→${forward.guest}`).join(','),
    health(instance),
  ]);
  const stale = instances.filter((instance) => instance.stale).map((instance) => instance.name);
  const unfinished = instances.filter((instance) => instance.state === 'running' && !instance.ready && instance.busyWith === undefined).map((instance) => instance.name);
  return [
    ...table([['NAME', 'STATE', 'PID', 'PATH', 'SNAPSHOT', 'PORTS (host→guest)', 'HEALTH'], ...rows]),
    ...(stale.length === 0 ? [] : [`(${stale.join(', ')}: a QEMU that died left its files; "warmvm stop --name <name>" cleans them)`]),
    ...(unfinished.length === 0 ? [] : [`(${unfinished.join(', ')}: the start that launched it did not finish; "warmvm start --name <name>" stops that QEMU and starts again)`]),
  ];
}

function health(instance: InstanceStatus): string {
  if (instance.state !== 'running') return NONE;
  if (instance.health.length === 0) return 'no checks';
  const passing = instance.health.filter((answer) => answer.status === answer.expectStatus).length;
  return passing === instance.health.length ? 'healthy' : `unhealthy (${passing}/${instance.health.length} checks pass)`;
}

function snapshotLines(snapshots: SnapshotSummary[]): string[] {
  if (snapshots.length === 0) return ['no snapshots'];
  return [
    'snapshots:',
    ...snapshots.map((snapshot) => {
      const facts =
        snapshot.problem === undefined
          ? `${snapshot.memoryMb} MB, ${snapshot.accel}, ${snapshot.cpuModel}, QEMU ${snapshot.qemuVersion}, captured by "${snapshot.capturedBy}" at ${snapshot.createdAt}`
          : snapshot.problem;
      const users = snapshot.usedBy.length === 0 ? 'used by no running instance' : `used by ${snapshot.usedBy.join(', ')}`;
      return `  ${snapshot.key}  ${facts}; ${sizeText(snapshot.bytesOnDisk)} on disk; ${users}`;
    }),
  ];
}

/** "512 B", "64.0 KB", "12.5 MB", "4.0 GB" (powers of 1024). */
export function sizeText(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let unit = 0;
  let value = bytes;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** Columns padded to their widest cell, two spaces apart. */
function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  '));
}
