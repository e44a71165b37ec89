import { type ChildProcess, spawn } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { resolveCommand } from '../support/which.js';

/*
 * One blob's bytes fetched by curl into a file, while the client hashes the file behind it. Node's
 * own receive of a response body (fetch or node:http) reaches 0.55–0.75× of curl writing the same
 * bytes here, before any hashing or writing, because it runs on the one JS thread; curl receives
 * and writes on its own core. The client keeps everything else: authentication, redirects, the
 * loopback-only plain HTTP rule, the digest, the flush and the rename.
 */

export interface CurlFetch {
  url: string;
  /** Sent only when the URL is the registry's own origin (the caller decides). */
  authorization: string | undefined;
  /** Written from `from` on: appended to when `from` > 0, created anew otherwise. */
  file: string;
  from: number;
  signal: AbortSignal | undefined;
}

export interface CurlOutcome {
  /** curl's exit status: 0, or one of curl's error codes (22: an HTTP error, 33: no ranges, 60: an untrusted certificate…). */
  exitCode: number;
  /** The HTTP status of the answer, 0 when none came. */
  status: number;
  /** What curl said on stderr, for a message (never holds the Authorization: it travels on stdin). */
  stderr: string;
}

export interface CurlRun {
  finished: Promise<CurlOutcome>;
  /** Stops it (SIGTERM); `finished` still settles. */
  stop(): void;
}

let found: Promise<string | undefined> | undefined;

/** Where curl is, once per process; undefined without it (the client then receives with fetch). */
export function findCurl(): Promise<string | undefined> {
  found ??= resolveCommand('curl');
  return found;
}

/** util-linux's setpriv, to give curl a parent-death signal: a warmvm killed with -9 must not leave curl writing the partial file. */
const SETPRIV = '/usr/bin/setpriv';

let setprivFound: Promise<boolean> | undefined;

/** Whether setpriv is there, looked up once per process like curl itself. */
function hasSetpriv(): Promise<boolean> {
  setprivFound ??= access(SETPRIV, constants.X_OK).then(
    () => true,
    () => false,
  );
  return setprivFound;
}

/** A value in curl's config file syntax: quoted, with backslashes and quotes escaped. */
function quoted(value: string): string {
  if (/[\r\n]/.test(value)) throw new Error('a curl config value may not hold a line break');
  return `"${value.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

/** The request as curl's config, read from its stdin: nothing secret reaches its argv (which `ps` shows). */
export function curlConfig(fetch: Omit<CurlFetch, 'signal'>, extraCaFile: string | undefined): string {
  const lines = [
    `url = ${quoted(fetch.url)}`,
    `output = ${quoted(fetch.file)}`,
    ...(fetch.from > 0 ? [`continue-at = ${fetch.from}`] : []),
    'header = "Accept-Encoding: identity"',
    'header = "User-Agent: warmvm"',
    ...(fetch.authorization === undefined ? [] : [`header = ${quoted(`Authorization: ${fetch.authorization}`)}`]),
    // The client followed the redirects already: one URL; another redirect fails (47) instead of writing its body.
    'location',
    'max-redirs = 0',
    'proto = "=http,https"',
    'fail',
    'silent',
    'show-error',
    'write-out = "%{http_code}"',
    // Node's trust: the system's CAs plus NODE_EXTRA_CA_CERTS (curl reads a CA file and a CA folder both).
    'capath = "/etc/ssl/certs"',
    ...(extraCaFile === undefined ? [] : [`cacert = ${quoted(extraCaFile)}`]),
  ];
  return `${lines.join('\n')}\n`;
}

/** Starts curl on `fetch`. */
export async function startCurl(curl: string, fetch: CurlFetch): Promise<CurlRun> {
  const withDeathSignal = await hasSetpriv();
  const [command, args] = withDeathSignal ? [SETPRIV, ['--pdeathsig', 'SIGKILL', '--', curl, '--config', '-']] : [curl, ['--config', '-']];
  const child: ChildProcess = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (text: string) => {
    stdout += text;
  });
  child.stderr?.setEncoding('utf8').on('data', (text: string) => {
    if (stderr.length < 4096) stderr += text;
  });
  const stop = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  };
  fetch.signal?.addEventListener('abort', stop, { once: true });
  // A signal that fired before the listener was added never calls it.
  if (fetch.signal?.aborted) stop();
  const finished = new Promise<CurlOutcome>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      fetch.signal?.removeEventListener('abort', stop);
      resolve({ exitCode: code ?? (signal === null ? -1 : 128), status: Number.parseInt(stdout.trim(), 10) || 0, stderr: stderr.trim() });
    });
  });
  child.stdin?.on('error', () => undefined);
  child.stdin?.end(curlConfig(fetch, process.env.NODE_EXTRA_CA_CERTS || undefined));
  return { finished, stop };
}
