import { stopInstance } from '../../adapters/instance-control.js';
import { instancePaths } from '../../adapters/paths.js';
import type { Output } from '../output.js';

export async function stopCommand(options: { name: string; home: string; output: Output }): Promise<number> {
  const report = await stopInstance(instancePaths(options.home, options.name));
  const human =
    report.result === 'stale-cleaned'
      ? `instance "${report.name}" was not running (its QEMU had died); removed ${report.removed.length} stale file(s)`
      : `instance "${report.name}" stopped (QEMU pid ${report.pid} ${report.result})`;
  options.output.result({ name: report.name, outcome: report.result === 'stale-cleaned' ? 'stale-cleaned' : 'stopped', pid: report.pid ?? null, removed: report.removed }, human);
  return 0;
}
