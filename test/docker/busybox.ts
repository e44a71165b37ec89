import { access, constants, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { downloadPackages, extractPackage, resolveCandidateVersions } from '../../adapters/guest/debian-packages.js';
import { projectRoot } from '../../adapters/support/project-root.js';
import { commandExists } from '../../adapters/support/which.js';

/**
 * A busybox for running the workload scripts on the host: $WARMVM_TEST_BUSYBOX, else one on PATH,
 * else the same busybox-static package the demo guest is built from, fetched once with apt into
 * the project's .warmvm-test/ folder. Undefined (with the reason) only when none can be had.
 */
export async function hostBusybox(): Promise<{ path: string } | { path: undefined; reason: string }> {
  const fromEnv = process.env.WARMVM_TEST_BUSYBOX;
  if (fromEnv) return { path: fromEnv };
  if (await commandExists('busybox')) return { path: 'busybox' };

  const cache = join(projectRoot(), '.warmvm-test', 'busybox');
  for (const version of await readdir(cache).catch(() => [] as string[])) {
    const path = join(cache, version, 'bin', 'busybox');
    if (
      await access(path, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return { path };
  }
  try {
    const [pkg] = await resolveCandidateVersions(['busybox-static']);
    if (!pkg) throw new Error('apt resolved nothing');
    const debs = await downloadPackages([pkg], join(cache, 'debs'));
    const deb = debs.get(pkg.name);
    if (!deb) throw new Error('apt downloaded nothing');
    const tree = join(cache, pkg.version.replaceAll(':', '_'));
    await extractPackage(deb, tree);
    return { path: join(tree, 'bin', 'busybox') };
  } catch (error) {
    return { path: undefined, reason: `no busybox on PATH and busybox-static could not be fetched with apt: ${(error as Error).message}` };
  }
}
