import { ensureDebianGuest } from '../../adapters/guest/debian/guest.js';
import { ensureDemoGuest } from '../../adapters/guest/demo/guest.js';
import type { Logger } from '../../adapters/support/logger.js';
import { ensureHome } from '../../adapters/instance/paths.js';
import type { Output } from '../output.js';

export async function guestBuildCommand(options: { home: string; profile: 'demo' | 'debian'; force: boolean; output: Output; logger: Logger }): Promise<number> {
  const home = await ensureHome(options.home);
  const controller = new AbortController();
  const onSignal = (): void => controller.abort(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  try {
    const started = Date.now();
    const common = {
      imagesDir: home.images,
      force: options.force,
      signal: controller.signal,
      logger: options.logger,
      onProgress: (line: string) => options.output.progress.activity(`building the ${options.profile} guest`, line),
    };
    const outcome = (built: boolean): string => (built ? 'built' : 'cached');
    const seconds = (): number => (Date.now() - started) / 1000;
    if (options.profile === 'debian') {
      const guest = await ensureDebianGuest(common);
      options.output.result(
        {
          outcome: outcome(guest.built),
          profile: 'debian',
          key: guest.key,
          disk: guest.disk,
          base: guest.base ?? null,
          kernel: guest.kernel,
          initrd: guest.initrd,
          seconds: seconds(),
        },
        `Debian guest ${guest.built ? 'built' : 'already built'} (${seconds().toFixed(1)} s):\n  disk   ${guest.disk}\n  base   ${guest.base ?? 'not here: this image came with a pulled snapshot ("guest build --profile debian --force" makes it)'} (before provisioning: cloud-init on, for your own userData)\n` +
          `  kernel ${guest.kernel}\n  initrd ${guest.initrd}\n` +
          'start it with a config holding {"image": {"profile": "debian"}}',
      );
      return 0;
    }
    const guest = await ensureDemoGuest(common);
    options.output.result(
      { outcome: outcome(guest.built), profile: 'demo', key: guest.key, kernel: guest.kernel, initrd: guest.initrd, seconds: seconds() },
      `demo guest ${guest.built ? 'built' : 'already built'} (${seconds().toFixed(1)} s):\n  kernel ${guest.kernel}\n  initrd ${guest.initrd}`,
    );
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
  }
}
