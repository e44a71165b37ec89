/*
 * The parts of the OCI image and distribution specs warmvm uses: a snapshot travels as an OCI
 * artifact (an image manifest whose config is warmvm's own manifest and whose layers are its files),
 * so any registry stores it and any OCI tool can copy it.
 */

export const OCI_LAYOUT_VERSION = '1.0.0';
export const OCI_INDEX_MEDIA_TYPE = 'application/vnd.oci.image.index.v1+json';
export const OCI_MANIFEST_MEDIA_TYPE = 'application/vnd.oci.image.manifest.v1+json';
/** The annotation an OCI image layout's index uses for a manifest's tag. */
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';
/** The annotation naming a layer's file (as ORAS does). */
export const TITLE_ANNOTATION = 'org.opencontainers.image.title';

/** `sha256:<64 hex>`. */
export type Digest = `sha256:${string}`;

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Record<string, string>;
  artifactType?: string;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType: typeof OCI_MANIFEST_MEDIA_TYPE;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType: typeof OCI_INDEX_MEDIA_TYPE;
  manifests: Descriptor[];
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

export function isDigest(value: unknown): value is Digest {
  return typeof value === 'string' && DIGEST.test(value);
}

/** `blobs/sha256/<hex>` of a digest: its place in an OCI image layout and in warmvm's blob cache. */
export function blobRelativePath(digest: Digest): string {
  return `blobs/sha256/${digest.slice('sha256:'.length)}`;
}
