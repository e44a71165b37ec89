import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

/** Whether `command` is an executable on PATH (or an executable path). */
export async function commandExists(command: string, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  return (await resolveCommand(command, env)) !== undefined;
}

/** The executable `command` names on PATH (or itself, when a path), or undefined. */
export async function resolveCommand(command: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const candidates = command.includes('/')
    ? [command]
    : (env.PATH ?? '')
        .split(delimiter)
        .filter(Boolean)
        .map((dir) => join(dir, command));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // try the next folder
    }
  }
  return undefined;
}
