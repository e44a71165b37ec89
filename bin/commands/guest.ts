import { ensureDemoGuest } from '../../adapters/demo-guest.js';
import type { Logger } from '../../adapters/logger.js';
import { ensureHome } from '../../adapters/paths.js';
import type { Output } from '../output.js';

export async function guestBuildCommand(options: { home: string; force: boolean; output: Output; logger: Logger }): Promise<number> {
  const home = await ensureHome(options.home);
  const controller = new AbortController();
  const onSignal = (): void => controller.abort(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  try {
    const started = Date.now();
    const guest = await ensureDemoGuest({
      imagesDir: home.images,
      force: options.force,
      signal: controller.signal,
      logger: options.logger,
      onProgress: (line) => options.output.progress(`  ${line}`),
    });
    const secondsTaken = (Date.now() - started) / 1000;
    options.output.result(
      { outcome: guest.built ? 'built' : 'cached', key: guest.key, kernel: guest.kernel, initrd: guest.initrd, seconds: secondsTaken },
      `demo guest ${guest.built ? 'built' : 'already built'} (${secondsTaken.toFixed(1)} s):\n  kernel ${guest.kernel}\n  initrd ${guest.initrd}`,
    );
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
  }
}
