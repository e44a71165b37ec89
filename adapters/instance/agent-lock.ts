import { WarmvmError } from '../support/errors.js';
import { sleep } from '../support/sleep.js';
import { tryLock, type InstanceLock } from './lock.js';

const RETRY_MS = 100;

/**
 * The instance's guest agent, for one `warmvm exec` at a time. QEMU's agent socket serves one
 * client: a second one's connect succeeds but nothing answers it until the first hangs up, so
 * without this lock a second exec would wait blind and then blame the agent. Waits `waitMs` for
 * another exec to finish, then says who holds it.
 */
export async function acquireAgentLock(lockFile: string, instanceName: string, options: { waitMs: number; signal?: AbortSignal }): Promise<InstanceLock> {
  const deadline = Date.now() + options.waitMs;
  for (;;) {
    const taken = await tryLock(lockFile);
    if ('lock' in taken) return taken.lock;
    if (Date.now() + RETRY_MS > deadline) {
      throw new WarmvmError('E_AGENT_BUSY', `the guest agent of instance "${instanceName}" is busy: another warmvm exec (pid ${taken.holder}) is using it`, {
        hint: `the agent serves one client at a time: wait for pid ${taken.holder} to finish (or stop it), then run the command again`,
      });
    }
    await sleep(RETRY_MS, options.signal);
  }
}
