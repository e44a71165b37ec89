import { WarmvmError } from '../support/errors.js';
import { QgaExecuteError } from '../qemu/protocol/errors.js';
import type { QgaClient } from '../qemu/protocol/qga-client.js';
import { generateSecrets, redactSecrets, secretsFingerprint, secretsToEnvLines, writeSecretsFile } from './secrets.js';

export interface RotationSpec {
  /** The guest command that reads `NAME=hex` lines on stdin, stores them and restarts the workload. */
  command: string;
  names: string[];
}

export interface RotationResult {
  secrets: number;
  exitCode: number;
  /** sha256 of the lines sent (what the demo guest serves at /secret-fingerprint). */
  fingerprint: string;
  /**
   * The agent's answer to guest-set-time, asked once the hook exited and not waited for: true, it set
   * the clock; false, it refused (some agents block it: the guest's clock stays the capture's);
   * undefined, the connection ended first. Never rejects.
   */
  clock: Promise<boolean | undefined>;
}

/**
 * Fresh secrets into the guest: generated here, sent base64 as guest-exec input-data (never on
 * a command line), the command must exit 0; then the guest clock is set from the host (a resumed
 * guest's clock is the capture's), and the secrets are written for the user, mode 0600.
 *
 * The clock is asked for after the hook, and its answer is not waited for. The agent sets the
 * system time at once, then runs /sbin/hwclock -w and answers nothing else until that ends:
 * util-linux's hwclock waits for a second boundary first (0.5–1 s). Asked while the hook ran, it
 * held up the hook's status polls by as much; asked after, it delays nothing the start waits for.
 */
export async function rotateSecrets(qga: QgaClient, spec: RotationSpec, options: { secretsFile: string; timeoutMs: number; signal?: AbortSignal }): Promise<RotationResult> {
  const secrets = generateSecrets(spec.names);
  const result = await qga.exec(spec.command, [], { inputData: secretsToEnvLines(secrets), timeoutMs: options.timeoutMs, signal: options.signal });
  if (result.exitCode !== 0) {
    const stderr = redactSecrets(result.stderr.toString('utf8'), secrets).trim().slice(-500);
    const how = result.exitCode === undefined ? `was killed by signal ${result.signal ?? '?'}` : `exited ${result.exitCode}`;
    throw new WarmvmError('E_ROTATE', `the guest's rotate command ${spec.command} ${how}${stderr ? `: ${stderr}` : ''}`, {
      hint: 'check the command inside the guest; warmvm falls back to a cold boot',
    });
  }
  // Not bound to the step's signal: the step ends before the answer comes, and the request is sent.
  const clock = qga.setTime(undefined, { timeoutMs: options.timeoutMs }).then(
    () => true,
    // An error answer is a refusal; a connection that ended or an answer that never came says nothing.
    (cause: unknown) => (cause instanceof QgaExecuteError ? false : undefined),
  );
  await writeSecretsFile(options.secretsFile, secrets);
  return { secrets: secrets.size, exitCode: 0, fingerprint: secretsFingerprint(secrets), clock };
}
