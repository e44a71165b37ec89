/** The digest a `url` image is named by: of the file as downloaded (compressed or not). */
export interface ImageDigest {
  algorithm: 'sha256' | 'sha512';
  hex: string;
}

/** `url-<algorithm>-<hex>`: the folder under images/ of the image with this digest. */
export function urlImageDir(digest: ImageDigest): string {
  return `url-${digest.algorithm}-${digest.hex}`;
}

/** The image file inside its folder. */
export function urlImageFile(format: 'qcow2' | 'raw'): string {
  return `disk.${format}`;
}
