import { readFile } from 'node:fs/promises';
import { sleep } from '../support/sleep.js';

/** Resolves once the serial log holds the marker; the caller's bound ends the wait through `signal`. */
export async function waitForSerialMarker(serialLog: string, marker: string, signal: AbortSignal | undefined): Promise<void> {
  for (;;) {
    const text = await readFile(serialLog, 'utf8').catch(() => '');
    if (text.includes(marker)) return;
    await sleep(250, signal);
  }
}
