import type { execa as Execa } from 'execa';

/**
 * execa, imported on first use: loading it costs about 100 ms, which a resume that runs no
 * helper command should not pay.
 */
export async function loadExeca(): Promise<typeof Execa> {
  return (await import('execa')).execa;
}
