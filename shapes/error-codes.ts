/**
 * Every error code warmvm gives a person or a program (`--json`'s `error.code`), in one leaf
 * module that machines, steps and adapters share and that imports nothing: a code is checked by
 * the compiler where it is made and where it is matched.
 */
export const ERROR_CODES = [
  'E_ABORTED',
  'E_ACCEL',
  'E_AGENT_BUSY',
  'E_ALREADY_RUNNING',
  'E_APT',
  'E_APT_DOWNLOAD',
  'E_APT_PACKAGE',
  'E_BAD_NAME',
  'E_BOUND',
  'E_CAPTURE_BUSY',
  'E_CONFIG',
  'E_CONFIG_CHANGED',
  'E_CONFIG_JSON',
  'E_CONFIG_READ',
  'E_DEB_UNPACK',
  'E_DEBOOTSTRAP',
  'E_EXEC_NOT_FOUND',
  'E_EXEC_TIMEOUT',
  'E_EXPECTED_TRACE',
  'E_GUEST_FILE',
  'E_GUEST_KERNEL',
  'E_GUEST_LIBRARY',
  'E_GUEST_MODULES',
  'E_GUEST_PUBLISH',
  'E_GUEST_ROOT',
  'E_GUEST_SOURCES',
  'E_HEALTH_TIMEOUT',
  'E_HOME_NOT_DIR',
  'E_HOME_UNWRITABLE',
  'E_IMAGE_DECOMPRESS',
  'E_IMAGE_DIGEST',
  'E_IMAGE_DOWNLOAD',
  'E_IMAGE_FORMAT',
  'E_IMAGE_MISSING',
  'E_INSPECT_PORT',
  'E_INTERRUPTED',
  'E_ISO_DATE',
  'E_ISO_FILE_TOO_BIG',
  'E_ISO_LABEL',
  'E_ISO_NAME',
  'E_ISO_ROOT_FULL',
  'E_ISO_TOO_BIG',
  'E_ISO_WRITE',
  'E_LOCK',
  'E_LOCKED',
  'E_LOG_MISSING',
  'E_MIGRATION',
  'E_MIGRATION_INCOMING',
  'E_MIGRATION_TIMEOUT',
  'E_MISSING',
  'E_NO_AGENT',
  'E_NO_INSTANCE',
  'E_NO_KERNEL',
  'E_NOT_PAUSED',
  'E_NOT_CAPTURABLE',
  'E_NOT_SUSPENDABLE',
  'E_STDIN_TOO_BIG',
  'E_SUSPEND',
  'E_NOT_RUNNING',
  'E_OCI_BLOB',
  'E_OCI_DIGEST',
  'E_OCI_LAYOUT',
  'E_OTLP_WRITE',
  'E_OVERLAY',
  'E_PATH_TOO_LONG',
  'E_PORT_TAKEN',
  'E_PROVISION',
  'E_QEMU_BROKEN',
  'E_QEMU_CHANGED',
  'E_QEMU_CRASHED',
  'E_QEMU_EXITED',
  'E_QEMU_MISSING',
  'E_QEMU_OLD',
  'E_QEMU_QUIT',
  'E_QEMU_SPAWN',
  'E_QEMU_STOP',
  'E_QGA_CONNECT',
  'E_QGA_DISCONNECTED',
  'E_QGA_EXECUTE',
  'E_QGA_TIMEOUT',
  'E_QMP_CONNECT',
  'E_QMP_DISCONNECTED',
  'E_QMP_EXECUTE',
  'E_QMP_GREETING',
  'E_QMP_NEGOTIATION',
  'E_QMP_STATE',
  'E_QMP_TIMEOUT',
  'E_REGISTRY',
  'E_REGISTRY_AUTH',
  'E_REGISTRY_DIGEST',
  'E_REGISTRY_MISSING',
  'E_REGISTRY_REF',
  'E_REGISTRY_UNREACHABLE',
  'E_ROTATE',
  'E_RUNNING',
  'E_SNAPSHOT_ARTIFACT',
  'E_SNAPSHOT_BACKING',
  'E_SNAPSHOT_BUSY',
  'E_SNAPSHOT_COMMIT',
  'E_SNAPSHOT_CORRUPT',
  'E_SNAPSHOT_IN_USE',
  'E_SNAPSHOT_KEY',
  'E_SNAPSHOT_MISMATCH',
  'E_SNAPSHOT_MISSING',
  'E_SNAPSHOT_RECOVER',
  'E_STATE',
  'E_TRACE_BAD_LINE',
  'E_TRACE_MISSING',
  'E_TRACE_UNREADABLE',
  'E_UNEXPECTED',
  'E_USAGE',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

const KNOWN: ReadonlySet<string> = new Set(ERROR_CODES);

/** Whether a value read off an unknown error is one of warmvm's codes. */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && KNOWN.has(value);
}

declare const foreign: unique symbol;

/** The code of an error warmvm did not make (Node's ENOSPC, EACCES), reported as it came. */
export type ForeignCode = string & { readonly [foreign]: true };

/** What a failure reports: one of warmvm's codes, or a system error's own. */
export type ReportedCode = ErrorCode | ForeignCode;

/** The code to report for a value read off an unknown error, if it has one. */
export function reportedCode(value: unknown): ReportedCode | undefined {
  if (isErrorCode(value)) return value;
  return typeof value === 'string' && value !== '' ? (value as ForeignCode) : undefined;
}
