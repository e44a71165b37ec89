/**
 * What warmvm writes holds guest memory, device state, disks and secrets: every file and folder it
 * (or a QEMU it spawns) creates is its user's alone. An umask, not a mode at every open, so that
 * what QEMU creates (the memory file, its sockets) is covered too.
 */
export function keepNewFilesPrivate(): void {
  process.umask(0o077);
}

/**
 * Runs `work` with a umask that lets others read: for what is built to be read inside a guest
 * (a root file system from debootstrap), whose modes are its users' permissions there.
 */
export async function withReadableFiles<T>(work: () => Promise<T>): Promise<T> {
  const previous = process.umask(0o022);
  try {
    return await work();
  } finally {
    process.umask(previous);
  }
}
