/**
 * A URL as warmvm prints it: without user info or query, which may hold credentials (a signed
 * URL's token); the scheme, host and path are enough to tell which file it is.
 */
export function shownUrl(url: string): string {
  const parsed = new URL(url);
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}${parsed.search === '' ? '' : '?…'}`;
}

/** The last segment of a URL's path: the file's name in progress lines. */
export function urlFileName(url: string): string {
  const name = new URL(url).pathname
    .split('/')
    .filter((part) => part !== '')
    .at(-1);
  return name === undefined ? 'image' : decodeURIComponent(name);
}
