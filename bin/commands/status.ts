import { instanceStatus } from '../../adapters/vm/control.js';
import { instancePaths } from '../../adapters/instance/paths.js';
import type { Output } from '../output.js';

export async function statusCommand(options: { name: string; home: string; output: Output }): Promise<number> {
  const status = await instanceStatus(instancePaths(options.home, options.name));
  const lines =
    status.state === 'running' && !status.ready
      ? [
          status.busyWith !== undefined
            ? `instance "${status.name}": starting (QEMU pid ${status.pid}; warmvm pid ${status.busyWith} is bringing it up)`
            : `instance "${status.name}": running, not ready: the start that launched it did not finish (QEMU pid ${status.pid})`,
          ...(status.busyWith === undefined ? [`  "warmvm start --name ${status.name}" stops that QEMU and starts again; "warmvm stop --name ${status.name}" only stops it`] : []),
        ]
      : status.state === 'running'
        ? [
            `instance "${status.name}": running (QEMU pid ${status.pid}, started ${status.startedAt}, path ${status.path})`,
            status.snapshot === undefined ? '  snapshot: none (cold-booted: its RAM is its own)' : `  snapshot: ${status.snapshot} (its RAM is mapped from it)`,
            ...status.health.map((answer) => `  ${answer.url}  → ${answer.status ?? 'no answer'}`),
          ]
        : status.suspendedAt !== undefined
          ? [
              `instance "${status.name}": suspended (since ${status.suspendedAt}): "warmvm start --name ${status.name}" wakes it where it was; "warmvm reset --name ${status.name}" drops it`,
            ]
          : [`instance "${status.name}": stopped${status.stale ? ' (a stale pidfile from a crash is left: "warmvm stop" cleans it)' : ''}`];
  options.output.result(
    {
      ...status,
      path: status.path ?? null,
      pid: status.pid ?? null,
      startedAt: status.startedAt ?? null,
      snapshot: status.snapshot ?? null,
      suspendedAt: status.suspendedAt ?? null,
      suspendedOn: status.suspendedOn ?? null,
      busyWith: status.busyWith ?? null,
    },
    lines.join('\n'),
  );
  return 0;
}
