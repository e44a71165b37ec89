import { rotateSecrets } from '../adapters/vm/rotation.js';
import type { VmRunner } from '../adapters/vm/runner.js';
import { emitExchange, type Run } from './run.js';

/** Fresh secrets into the guest through its agent (cold boot and resume alike), the exchange recorded. */
export async function rotateOn(run: Run, runner: VmRunner, signal: AbortSignal): Promise<{ secrets: number; exitCode: number }> {
  const rotation = run.spec.rotation;
  if (!rotation) return { secrets: 0, exitCode: 0 };
  const qga = await runner.agent(run.spec.bounds.rotateMs, signal);
  const started = Date.now();
  const work = rotateSecrets(qga, rotation, { secretsFile: run.paths.secretsFile, timeoutMs: run.spec.bounds.rotateMs, signal });
  const result = await runner.whileRunning('rotating secrets', work).catch((error: unknown) => {
    // The error's message is secret-free: rotateSecrets redacts the guest's stderr.
    emitExchange(run, { channel: 'exec', what: rotation.command, ok: false, summary: (error as Error).message, ms: Date.now() - started });
    throw error;
  });
  emitExchange(run, { channel: 'exec', what: rotation.command, ok: true, summary: `exit ${result.exitCode}, ${result.secrets} secrets in`, ms: Date.now() - started });
  // The clock's answer comes while the health is probed, or after the start ends (then it is lost).
  void result.clock.then((set) => {
    if (set === false) run.logger.warn("the guest agent refused guest-set-time: the guest's clock stays the capture's (see qemu-ga's block-rpcs and allow-rpcs settings)");
  });
  return { secrets: result.secrets, exitCode: result.exitCode };
}
