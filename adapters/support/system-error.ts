/** The code of the first system error (ENOSPC, EACCES, …) in an error's chain of causes. */
export function systemErrorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; current instanceof Error && depth < 6; depth += 1) {
    const { code, syscall } = current as NodeJS.ErrnoException;
    if (typeof code === 'string' && syscall !== undefined) return code;
    current = current.cause;
  }
  return undefined;
}

/**
 * What to do about the system error in `error`'s causes, writing in the folder `place`; `fallback`
 * for any other error. A full disk wants space, not the permissions a generic hint would point at.
 */
export function systemErrorFix(error: unknown, place: string, fallback: string): string {
  switch (systemErrorCode(error)) {
    case 'ENOSPC':
      return `free some space on the file system that holds ${place} (df -h ${place} shows it), or set WARMVM_HOME to a folder on another`;
    case 'EDQUOT':
      return `your disk quota on the file system that holds ${place} is used up: free some space, or set WARMVM_HOME to a folder on another`;
    case 'EROFS':
      return `${place} is on a read-only file system: set WARMVM_HOME to a folder you can write`;
    case 'EACCES':
    case 'EPERM':
      return `check the permissions of ${place} (ls -ld ${place}), or set WARMVM_HOME to a folder you own`;
    case 'EMFILE':
    case 'ENFILE':
      return 'too many files are open: close some programs, or raise the limit (ulimit -n)';
    default:
      return fallback;
  }
}
