import { WarmvmError } from '../support/errors.js';

/** Node's codes for a certificate chain that ends at no CA it trusts. */
const CERTIFICATE_UNTRUSTED = /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|CERT_UNTRUSTED)$/;

/** Codes of a connection that was made and then lost, or that timed out: worth another try. */
const CUT = /^(ECONNRESET|EPIPE|ETIMEDOUT|ECONNABORTED|UND_ERR_SOCKET|UND_ERR_CLOSED|UND_ERR_CONNECT_TIMEOUT|UND_ERR_HEADERS_TIMEOUT|UND_ERR_BODY_TIMEOUT)$/;

/** The first code (ECONNREFUSED, UND_ERR_SOCKET, a TLS verdict) in an error's chain of causes. */
export function causeCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 6 && current !== undefined && current !== null; depth += 1) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Whether a failed request or body read lost a connection that was up (fetch's body says "terminated"). */
export function isCutConnection(error: unknown): boolean {
  const code = causeCode(error);
  if (code !== undefined) return CUT.test(code);
  return error instanceof TypeError && error.message === 'terminated';
}

/** A request that never got an answer, by why: the fix differs for a refused port, a name, a certificate. */
export function unreachableError(shown: string, error: unknown): WarmvmError {
  const code = causeCode(error);
  const host = new URL(shown).host;
  const what = `cannot download the image ${shown}`;
  const fix = (message: string, hint: string) => new WarmvmError('E_IMAGE_DOWNLOAD', `${what}: ${message}`, { hint, cause: error });
  if (code === 'ECONNREFUSED')
    return fix(`the connection to ${host} was refused (ECONNREFUSED)`, `check that the server at ${host} is up and that image.url is right, then start again`);
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    return fix(`the host name ${new URL(shown).hostname} does not resolve here (${code})`, 'check the host name in image.url, and this machine’s DNS');
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return fix(`the certificate ${host} showed is for another name (${code})`, 'use a URL whose host name its certificate holds');
  if (code !== undefined && CERTIFICATE_UNTRUSTED.test(code))
    return fix(
      `the certificate of ${host} is not trusted here (${code})`,
      'if the server uses a private CA, give it to warmvm: NODE_EXTRA_CA_CERTS=/path/to/ca.pem warmvm start …',
    );
  if (isCutConnection(error))
    return fix(`the connection to ${host} was cut (${code ?? 'terminated'}) and the tries ran out`, 'start again: the download continues where it stopped');
  return fix(`${host} could not be reached (${code ?? (error instanceof Error ? error.message : String(error))})`, `check that ${host} is reachable from here, then start again`);
}

/** An answer that is not the file: what the status means for the person who wrote the URL. */
export function statusError(shown: string, status: number, statusText: string, tries: number): WarmvmError {
  const answered = `cannot download the image ${shown}: the server answered ${status}${statusText === '' ? '' : ` ${statusText}`}`;
  if (status === 404 || status === 410) return new WarmvmError('E_IMAGE_DOWNLOAD', answered, { hint: 'the server has no file there: check image.url in the config' });
  if (status === 401 || status === 403)
    return new WarmvmError('E_IMAGE_DOWNLOAD', answered, {
      hint: 'the server wants credentials, which warmvm does not send: use a URL that serves the file as it is (a signed URL)',
    });
  if (status >= 500)
    return new WarmvmError('E_IMAGE_DOWNLOAD', `${answered} (${tries} tries)`, { hint: 'the server is failing: start again later; what was downloaded is kept and continued' });
  return new WarmvmError('E_IMAGE_DOWNLOAD', answered, { hint: 'check image.url in the config: it must answer a plain GET with the file' });
}
