import { WarmvmError } from '../support/errors.js';
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
  /** False when the agent refused guest-set-time (some block it): the guest clock is the capture's. */
  clockSet: boolean;
}

/**
 * Fresh secrets into the guest: generated here, sent base64 as guest-exec input-data (never on
 * a command line), the command must exit 0; the guest clock is set from the host while it runs (a
 * resumed guest's clock is the capture's), and the secrets are written for the user, mode 0600.
 */
export async function rotateSecrets(qga: QgaClient, spec: RotationSpec, options: { secretsFile: string; timeoutMs: number; signal?: AbortSignal }): Promise<RotationResult> {
  const secrets = generateSecrets(spec.names);
  let clock: Promise<boolean> | undefined;
  // Some agents block guest-set-time; a stale clock is reported, not a failed start.
  const setClock = (): Promise<boolean> =>
    qga.setTime(undefined, { signal: options.signal }).then(
      () => true,
      (cause: unknown) => {
        if ((cause as { code?: string }).code === 'E_ABORTED') throw cause;
        return false;
      },
    );
  const result = await qga.exec(spec.command, [], {
    inputData: secretsToEnvLines(secrets),
    timeoutMs: options.timeoutMs,
    signal: options.signal,
    // Queued behind guest-exec: the agent sets the clock (and runs hwclock) while the hook runs.
    onStarted: () => {
      clock = setClock();
      clock.catch(() => undefined);
    },
  });
  if (result.exitCode !== 0) {
    const stderr = redactSecrets(result.stderr.toString('utf8'), secrets).trim().slice(-500);
    const how = result.exitCode === undefined ? `was killed by signal ${result.signal ?? '?'}` : `exited ${result.exitCode}`;
    throw new WarmvmError('E_ROTATE', `the guest's rotate command ${spec.command} ${how}${stderr ? `: ${stderr}` : ''}`, {
      hint: 'check the command inside the guest; warmvm falls back to a cold boot',
    });
  }
  const clockSet = await (clock ?? setClock());
  await writeSecretsFile(options.secretsFile, secrets);
  return { secrets: secrets.size, exitCode: 0, fingerprint: secretsFingerprint(secrets), clockSet };
}
