import { createHash, randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { syncDir } from '../support/durable.js';
import { redactValues } from '../support/redact.js';

/** Fresh per-start secrets: NAME → hex. Never logged, traced or put in an error. */
export type Secrets = ReadonlyMap<string, string>;

const NAME = /^[A-Z_][A-Z0-9_]*$/;

export function generateSecrets(names: readonly string[], bytes = 32): Secrets {
  const secrets = new Map<string, string>();
  for (const name of names) {
    if (!NAME.test(name)) throw new Error(`secret name ${JSON.stringify(name)} is not [A-Z_][A-Z0-9_]*`);
    secrets.set(name, randomBytes(bytes).toString('hex'));
  }
  return secrets;
}

/** `NAME=hex\n` lines: what the guest's rotate command reads on stdin. */
export function secretsToEnvLines(secrets: Secrets): string {
  return [...secrets].map(([name, value]) => `${name}=${value}\n`).join('');
}

/** sha256 of the env lines: what the demo guest serves at /secret-fingerprint. */
export function secretsFingerprint(secrets: Secrets): string {
  return createHash('sha256').update(secretsToEnvLines(secrets)).digest('hex');
}

/** Replaces every secret value in `text` (a guest's stderr, say) before a person sees it. */
export function redactSecrets(text: string, secrets: Secrets): string {
  return redactValues(text, secrets.values());
}

/**
 * Writes the secrets for the user, readable by the user only from the first byte on; flushed
 * before the rename that publishes them, the folder after it: a power loss leaves the old file or
 * the whole new one, never an empty one that the guest's secrets no longer match.
 */
export async function writeSecretsFile(file: string, secrets: Secrets): Promise<void> {
  const temp = `${file}.tmp-${process.pid}`;
  const handle = await open(temp, 'w', 0o600);
  try {
    await handle.chmod(0o600); // an umask never widens, but a pre-existing temp might be wider
    await handle.writeFile(secretsToEnvLines(secrets));
    await handle.datasync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await syncDir(dirname(file));
}
