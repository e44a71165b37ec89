import { writeIsoFile } from '../formats/iso9660/image.js';

/** The label the guest finds the disk by (`blkid -L warmvm-rt`). */
export const RUNTIME_DISK_LABEL = 'warmvm-rt';
export const SETTINGS_FILE = 'settings.env';

/**
 * `NAME='value'` lines, sorted, single-quoted for sh (`'` written as `'\''`), which systemd's
 * EnvironmentFile= reads the same way. The instance's name comes first-class as WARMVM_INSTANCE.
 */
export function settingsEnv(instance: string, settings: Record<string, string>): string {
  const all: Record<string, string> = { ...settings, WARMVM_INSTANCE: instance };
  return Object.keys(all)
    .sort()
    .map((name) => `${name}='${(all[name] as string).replaceAll("'", "'\\''")}'\n`)
    .join('');
}

/** The settings disk a guest reads when it boots: an ISO with one file, written beside then renamed. */
export async function writeRuntimeDisk(path: string, instance: string, settings: Record<string, string>): Promise<void> {
  await writeIsoFile(path, { volumeLabel: RUNTIME_DISK_LABEL, files: [{ name: SETTINGS_FILE, data: Buffer.from(settingsEnv(instance, settings)) }] });
}
