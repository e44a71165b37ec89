import { WarmvmError } from '../support/errors.js';
import { type Descriptor, type Digest, type ImageManifest, isDigest, OCI_MANIFEST_MEDIA_TYPE, TITLE_ANNOTATION } from '../oci/types.js';
import { parseManifest, type SnapshotManifest } from './manifest.js';

/*
 * A snapshot as an OCI artifact: an image manifest whose config is warmvm's own (the snapshot's
 * manifest and where its disk's backing file lives) and whose layers are its files, each
 * compressed with zstd, or as it is when zstd would not shrink it (a qcow2 of compressed
 * clusters): such a layer is the file itself, and a pull links it into place instead of
 * unpacking it. A registry stores it like any image; only warmvm unpacks it.
 */
export const SNAPSHOT_ARTIFACT_TYPE = 'application/vnd.warmvm.snapshot.v1';
export const SNAPSHOT_CONFIG_MEDIA_TYPE = 'application/vnd.warmvm.snapshot.config.v1+json';
/** Every layer is one file, compressed as standard zstd (frames back to back; holes come back as holes)… */
export const LAYER_MEDIA_TYPE = 'application/vnd.warmvm.snapshot.file.v1+zstd';
/** …or the file's own bytes, when zstd would not shrink it. */
export const RAW_LAYER_MEDIA_TYPE = 'application/vnd.warmvm.snapshot.file.v1';
/** How a layer's blob holds its file. */
export type LayerEncoding = 'zstd' | 'raw';
/** Format 2 may hold raw layers, which a warmvm that reads format 1 would take for damaged zstd. */
export const ARTIFACT_FORMAT = 2;
const READABLE_FORMATS = new Set([1, 2]);
/** What a layer is for: one of the snapshot's files, or a file of the guest image it boots. */
export const ROLE_ANNOTATION = 'dev.warmvm.role';
/** The guest image's folder under `images/` that an image layer belongs in. */
export const IMAGE_DIR_ANNOTATION = 'dev.warmvm.image.dir';
/** What the store writes beside a snapshot's own files: none of those may be named so. */
const STORE_OWN_FILES = new Set(['manifest.json', 'verified.json', 'resume-failures', 'reason.txt']);
/** Bounded: the config is read before anything large, and must stay small. */
export const MAX_CONFIG_BYTES = 1 << 20;
export const MAX_MANIFEST_BYTES = 1 << 20;

export type LayerRole = 'memory' | 'state' | 'disk' | 'image';

/**
 * Where the frozen disk's backing file is: a file of a guest image warmvm built (its folder under
 * `images/`, rebuilt for the importing home), or a path outside the home that must exist there too.
 */
export type DiskBacking = { imageDir: string; file: string } | { path: string };

export interface SnapshotArtifactConfig {
  /** The artifact's own format, apart from the snapshot's. */
  artifactFormat: 1 | 2;
  manifest: SnapshotManifest;
  diskBacking: DiskBacking | undefined;
}

/** One file to pack: its role, its name in the snapshot or image folder, and (for an image file) that folder. */
export interface PackedLayer {
  role: LayerRole;
  name: string;
  imageDir: string | undefined;
  descriptor: Descriptor;
}

export function layerDescriptor(role: LayerRole, name: string, imageDir: string | undefined, blob: { digest: Digest; size: number; encoding: LayerEncoding }): Descriptor {
  const annotations: Record<string, string> = { [TITLE_ANNOTATION]: name, [ROLE_ANNOTATION]: role };
  if (imageDir !== undefined) annotations[IMAGE_DIR_ANNOTATION] = imageDir;
  return { mediaType: blob.encoding === 'raw' ? RAW_LAYER_MEDIA_TYPE : LAYER_MEDIA_TYPE, digest: blob.digest, size: blob.size, annotations };
}

/** How a layer's blob holds its file, read from its media type (parseSnapshotArtifact refuses any other). */
export function layerEncoding(layer: PackedLayer): LayerEncoding {
  return layer.descriptor.mediaType === RAW_LAYER_MEDIA_TYPE ? 'raw' : 'zstd';
}

export function imageManifestFor(config: { digest: Digest; size: number }, layers: Descriptor[], createdAt: string): ImageManifest {
  return {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    artifactType: SNAPSHOT_ARTIFACT_TYPE,
    config: { mediaType: SNAPSHOT_CONFIG_MEDIA_TYPE, digest: config.digest, size: config.size },
    layers,
    annotations: { 'org.opencontainers.image.created': createdAt },
  };
}

/** The image manifest of a warmvm snapshot, its layers read back with their roles; anything else is refused with what it is. */
export function parseSnapshotArtifact(body: Buffer, where: string): { manifest: ImageManifest; layers: PackedLayer[] } {
  let value: Partial<ImageManifest>;
  try {
    value = JSON.parse(body.toString('utf8')) as Partial<ImageManifest>;
  } catch (cause) {
    throw notASnapshot(where, 'its manifest is not JSON', cause);
  }
  if (!isObject(value)) throw notASnapshot(where, 'its manifest is not a JSON object');
  if (value.config?.mediaType !== SNAPSHOT_CONFIG_MEDIA_TYPE) {
    const found = value.config?.mediaType ?? ((value as { manifests?: unknown }).manifests !== undefined ? 'missing (it is an image index)' : 'missing');
    throw notASnapshot(where, `its config media type is ${found}, not ${SNAPSHOT_CONFIG_MEDIA_TYPE}`);
  }
  if (!isDigest(value.config.digest) || !Array.isArray(value.layers)) throw notASnapshot(where, 'its config or layers are malformed');
  const layers = value.layers.map((layer: Descriptor | null): PackedLayer => {
    if (!isObject(layer)) throw notASnapshot(where, 'a layer is not a JSON object');
    const role = layer.annotations?.[ROLE_ANNOTATION];
    const name = layer.annotations?.[TITLE_ANNOTATION];
    const imageDir = layer.annotations?.[IMAGE_DIR_ANNOTATION];
    if (!isDigest(layer.digest) || !isRole(role) || !safeName(name) || (imageDir !== undefined && !safeName(imageDir)) || (role === 'image') !== (imageDir !== undefined)) {
      throw notASnapshot(where, `a layer (${String(layer.digest)}) lacks a valid role, file name or image folder`);
    }
    if (layer.mediaType !== LAYER_MEDIA_TYPE && layer.mediaType !== RAW_LAYER_MEDIA_TYPE) {
      throw notASnapshot(where, `its layer ${name} has media type ${String(layer.mediaType)}, not ${LAYER_MEDIA_TYPE} or ${RAW_LAYER_MEDIA_TYPE}`);
    }
    return { role, name, imageDir, descriptor: layer };
  });
  for (const role of ['memory', 'state'] as const) if (!layers.some((layer) => layer.role === role)) throw notASnapshot(where, `it has no ${role} layer`);
  return { manifest: value as ImageManifest, layers };
}

export function serializeConfig(config: SnapshotArtifactConfig): Buffer {
  return Buffer.from(`${JSON.stringify(config, null, 2)}\n`);
}

export function parseConfig(body: Buffer, where: string): SnapshotArtifactConfig {
  let value: Partial<SnapshotArtifactConfig>;
  try {
    value = JSON.parse(body.toString('utf8')) as Partial<SnapshotArtifactConfig>;
  } catch (cause) {
    throw notASnapshot(where, 'its config is not JSON', cause);
  }
  if (!isObject(value)) throw notASnapshot(where, 'its config is not a JSON object');
  const format = value.artifactFormat;
  if (typeof format !== 'number' || !READABLE_FORMATS.has(format)) {
    throw notASnapshot(where, `its config is artifact format ${String(format)}; this warmvm reads formats ${[...READABLE_FORMATS].join(' and ')}`);
  }
  if (!isObject(value.manifest)) throw notASnapshot(where, 'its config holds no snapshot manifest');
  let manifest: SnapshotManifest;
  try {
    manifest = parseManifest(JSON.stringify(value.manifest));
  } catch (cause) {
    throw notASnapshot(where, (cause as Error).message, cause);
  }
  // Its key and file names become paths in the store: each must be one component of it.
  const names = [manifest.files.memory.name, manifest.files.state.name, ...(manifest.files.disk ? [manifest.files.disk.name] : [])];
  if (!safeName(manifest.specHash) || manifest.specHash.startsWith('.') || !names.every(safeName)) {
    throw notASnapshot(where, 'its config key or file names are not names of one folder or file');
  }
  if (new Set(names).size !== names.length || names.some((name) => STORE_OWN_FILES.has(name))) {
    throw notASnapshot(where, `its file names (${names.join(', ')}) repeat, or take the name of a file the store keeps beside them`);
  }
  const backing: unknown = value.diskBacking;
  const backingOk =
    backing === undefined ||
    backing === null ||
    (isObject(backing) && ('path' in backing ? typeof backing.path === 'string' && backing.path.startsWith('/') : safeName(backing.imageDir) && safeName(backing.file)));
  if (!backingOk) throw notASnapshot(where, 'its disk backing is malformed');
  return { artifactFormat: format as 1 | 2, manifest, diskBacking: (backing ?? undefined) as DiskBacking | undefined };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isRole(value: unknown): value is LayerRole {
  return value === 'memory' || value === 'state' || value === 'disk' || value === 'image';
}

/** One path component: a layer never names a place outside its folder. */
function safeName(value: unknown): value is string {
  return typeof value === 'string' && /^[^/\0]+$/.test(value) && value !== '.' && value !== '..';
}

function notASnapshot(where: string, why: string, cause?: unknown): WarmvmError {
  return new WarmvmError('E_SNAPSHOT_ARTIFACT', `${where} is not a warmvm snapshot this warmvm can read: ${why}`, {
    hint: 'push it again with "warmvm snapshot push" (or export it with "warmvm snapshot export") from a warmvm of this version',
    cause,
  });
}
