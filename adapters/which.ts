import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

/** Whether `command` is an executable on PATH (or an executable path). */
export async function commandExists(command: string, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const candidates = command.includes('/') ? [command] : (env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, command));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      return true;
    } catch {
      // try the next folder
    }
  }
  return false;
}
