import { describe, expect, it } from 'vitest';
import { type Descriptor, type Digest, OCI_INDEX_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE, TITLE_ANNOTATION } from '../../../adapters/oci/types.js';
import {
  IMAGE_DIR_ANNOTATION,
  imageManifestFor,
  LAYER_MEDIA_TYPE,
  layerDescriptor,
  layerEncoding,
  parseConfig,
  parseSnapshotArtifact,
  RAW_LAYER_MEDIA_TYPE,
  ROLE_ANNOTATION,
  SNAPSHOT_ARTIFACT_TYPE,
  SNAPSHOT_CONFIG_MEDIA_TYPE,
  type SnapshotArtifactConfig,
  serializeConfig,
} from '../../../adapters/snapshot/artifact.js';
import { FROZEN_DISK, MEMORY_FILE, STATE_FILE } from '../../../adapters/snapshot/store.js';
import { manifestFixture } from '../../helpers/manifest-fixture.js';

const WHERE = 'registry.test/snap:1';
const digest = (hex: string): Digest => `sha256:${hex.repeat(64).slice(0, 64)}`;
const CONFIG = { digest: digest('c'), size: 1234 };
/** What a refusal must never read like: JavaScript's own words for a value of the wrong type. */
const TYPE_ERROR_TEXT = /Cannot read properties|Cannot use 'in' operator|is not a function|undefined \(reading/;

/** The layers a disk guest's snapshot packs: its three files and two files of its guest image. */
function snapshotLayers(): Descriptor[] {
  return [
    layerDescriptor('memory', MEMORY_FILE, undefined, { digest: digest('1'), size: 10, encoding: 'zstd' }),
    layerDescriptor('state', STATE_FILE, undefined, { digest: digest('2'), size: 20, encoding: 'zstd' }),
    layerDescriptor('disk', FROZEN_DISK, undefined, { digest: digest('3'), size: 30, encoding: 'zstd' }),
    layerDescriptor('image', 'vmlinuz', 'demo-abc', { digest: digest('4'), size: 40, encoding: 'zstd' }),
    layerDescriptor('image', 'initrd.img', 'demo-abc', { digest: digest('5'), size: 50, encoding: 'raw' }),
  ];
}

function body(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

/** The image manifest of `snapshotLayers`, with `change` applied to its JSON value. */
function manifestWith(change: (value: { config: Descriptor; layers: Descriptor[]; [key: string]: unknown }) => void): Buffer {
  const value = structuredClone(imageManifestFor(CONFIG, snapshotLayers(), '2026-11-22T00:00:00.000Z')) as unknown as { config: Descriptor; layers: Descriptor[] };
  change(value);
  return body(value);
}

function refused(buffer: Buffer, why: string | RegExp): void {
  let thrown: unknown;
  try {
    parseSnapshotArtifact(buffer, WHERE);
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toMatchObject({ code: 'E_SNAPSHOT_ARTIFACT', message: expect.stringContaining(`${WHERE} is not a warmvm snapshot`) });
  expect((thrown as Error).message).toMatch(why);
  expect((thrown as Error).message).not.toMatch(TYPE_ERROR_TEXT);
  expect((thrown as { hint?: string }).hint).toContain('warmvm snapshot push');
}

describe('layerDescriptor and imageManifestFor', () => {
  it('name a layer by its title and role, with its image folder only for an image file', () => {
    expect(layerDescriptor('memory', MEMORY_FILE, undefined, { digest: digest('1'), size: 10, encoding: 'zstd' })).toEqual({
      mediaType: LAYER_MEDIA_TYPE,
      digest: digest('1'),
      size: 10,
      annotations: { [TITLE_ANNOTATION]: MEMORY_FILE, [ROLE_ANNOTATION]: 'memory' },
    });
    expect(layerDescriptor('image', 'vmlinuz', 'demo-abc', { digest: digest('4'), size: 40, encoding: 'zstd' }).annotations).toEqual({
      [TITLE_ANNOTATION]: 'vmlinuz',
      [ROLE_ANNOTATION]: 'image',
      [IMAGE_DIR_ANNOTATION]: 'demo-abc',
    });
  });

  it('make an OCI image manifest typed as a warmvm snapshot, its config warmvm’s own', () => {
    const layers = snapshotLayers();
    expect(imageManifestFor(CONFIG, layers, '2026-11-22T00:00:00.000Z')).toEqual({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST_MEDIA_TYPE,
      artifactType: SNAPSHOT_ARTIFACT_TYPE,
      config: { mediaType: SNAPSHOT_CONFIG_MEDIA_TYPE, digest: CONFIG.digest, size: CONFIG.size },
      layers,
      annotations: { 'org.opencontainers.image.created': '2026-11-22T00:00:00.000Z' },
    });
  });
});

describe('parseSnapshotArtifact', () => {
  it('reads back the manifest it is given, every layer with its role, name and image folder', () => {
    const manifest = imageManifestFor(CONFIG, snapshotLayers(), '2026-11-22T00:00:00.000Z');
    const parsed = parseSnapshotArtifact(body(manifest), WHERE);
    expect(parsed.manifest).toEqual(manifest);
    expect(parsed.layers.map(({ role, name, imageDir }) => [role, name, imageDir])).toEqual([
      ['memory', MEMORY_FILE, undefined],
      ['state', STATE_FILE, undefined],
      ['disk', FROZEN_DISK, undefined],
      ['image', 'vmlinuz', 'demo-abc'],
      ['image', 'initrd.img', 'demo-abc'],
    ]);
    expect(parsed.layers.map((layer) => layer.descriptor)).toEqual(manifest.layers);
    // A file zstd would not shrink travels as it is, and says so by its media type.
    expect(parsed.layers.map((layer) => [layer.descriptor.mediaType, layerEncoding(layer)])).toEqual([
      ...Array.from({ length: 4 }, () => [LAYER_MEDIA_TYPE, 'zstd']),
      [RAW_LAYER_MEDIA_TYPE, 'raw'],
    ]);
  });

  it('takes a snapshot without disk or image layers', () => {
    const value = manifestWith((m) => {
      m.layers = m.layers.slice(0, 2);
    });
    expect(parseSnapshotArtifact(value, WHERE).layers.map((layer) => layer.role)).toEqual(['memory', 'state']);
  });

  it('refuses what is not JSON', () => {
    refused(Buffer.from('{"schemaVersion": 2, '), 'its manifest is not JSON');
    refused(Buffer.from([0xff, 0x00, 0x7b]), 'its manifest is not JSON');
  });

  it('refuses an image index, saying that is what it is', () => {
    refused(
      body({ schemaVersion: 2, mediaType: OCI_INDEX_MEDIA_TYPE, manifests: [{ mediaType: OCI_MANIFEST_MEDIA_TYPE, digest: digest('a'), size: 1 }] }),
      'missing (it is an image index)',
    );
  });

  it('refuses another config media type, naming it, and a manifest with no config', () => {
    refused(
      manifestWith((m) => {
        m.config.mediaType = 'application/vnd.oci.image.config.v1+json';
      }),
      `its config media type is application/vnd.oci.image.config.v1+json, not ${SNAPSHOT_CONFIG_MEDIA_TYPE}`,
    );
    refused(body({ schemaVersion: 2, layers: [] }), 'its config media type is missing, not');
  });

  it('refuses a malformed config digest or layers that are not a list', () => {
    refused(
      manifestWith((m) => {
        m.config.digest = 'sha256:abc' as Digest;
      }),
      'its config or layers are malformed',
    );
    refused(
      manifestWith((m) => {
        (m as { layers: unknown }).layers = { 0: m.layers[0] };
      }),
      'its config or layers are malformed',
    );
  });

  it('refuses a layer without a role, an unknown role, or without a title', () => {
    const why = /a layer \(sha256:1{64}\) lacks a valid role, file name or image folder/;
    refused(
      manifestWith((m) => {
        delete m.layers[0]?.annotations?.[ROLE_ANNOTATION];
      }),
      why,
    );
    refused(
      manifestWith((m) => {
        (m.layers[0]?.annotations as Record<string, string>)[ROLE_ANNOTATION] = 'swap';
      }),
      why,
    );
    refused(
      manifestWith((m) => {
        delete m.layers[0]?.annotations?.[TITLE_ANNOTATION];
      }),
      why,
    );
    refused(
      manifestWith((m) => {
        delete m.layers[0]?.annotations;
      }),
      why,
    );
  });

  it('refuses a layer title or image folder that is not one path component', () => {
    for (const title of ['../mem.raw', 'sub/mem.raw', '/etc/passwd', '..', '.', '', 'a\0b']) {
      refused(
        manifestWith((m) => {
          (m.layers[3]?.annotations as Record<string, string>)[TITLE_ANNOTATION] = title;
        }),
        /a layer \(sha256:4{64}\) lacks/,
      );
    }
    for (const dir of ['..', '../images', 'demo/abc', '']) {
      refused(
        manifestWith((m) => {
          (m.layers[3]?.annotations as Record<string, string>)[IMAGE_DIR_ANNOTATION] = dir;
        }),
        /a layer \(sha256:4{64}\) lacks/,
      );
    }
  });

  it('refuses an image layer without an image folder, and a snapshot file layer with one', () => {
    refused(
      manifestWith((m) => {
        delete m.layers[4]?.annotations?.[IMAGE_DIR_ANNOTATION];
      }),
      /a layer \(sha256:5{64}\) lacks/,
    );
    refused(
      manifestWith((m) => {
        (m.layers[1]?.annotations as Record<string, string>)[IMAGE_DIR_ANNOTATION] = 'demo-abc';
      }),
      /a layer \(sha256:2{64}\) lacks/,
    );
  });

  it('refuses a layer of another media type, naming it, rather than unpack what it cannot read', () => {
    refused(
      manifestWith((m) => {
        (m.layers[0] as Descriptor).mediaType = 'application/vnd.oci.image.layer.v1.tar+gzip';
      }),
      `its layer ${MEMORY_FILE} has media type application/vnd.oci.image.layer.v1.tar+gzip, not ${LAYER_MEDIA_TYPE} or ${RAW_LAYER_MEDIA_TYPE}`,
    );
  });

  it('refuses a layer with a malformed digest', () => {
    refused(
      manifestWith((m) => {
        (m.layers[2] as Descriptor).digest = 'sha512:00' as Digest;
      }),
      /a layer \(sha512:00\) lacks/,
    );
  });

  it('refuses a snapshot without its memory or its state layer', () => {
    refused(
      manifestWith((m) => {
        m.layers = m.layers.filter((layer) => layer.annotations?.[ROLE_ANNOTATION] !== 'memory');
      }),
      'it has no memory layer',
    );
    refused(
      manifestWith((m) => {
        m.layers = m.layers.filter((layer) => layer.annotations?.[ROLE_ANNOTATION] !== 'state');
      }),
      'it has no state layer',
    );
  });

  // A manifest comes from a registry or a file: any JSON must be refused as not a snapshot, not crash with a TypeError.
  it('refuses a manifest that is JSON null as not a snapshot', () => {
    for (const text of ['null', '[]', '42', '"a manifest"']) refused(Buffer.from(text), /: .+/);
  });

  it('refuses a layer that is JSON null as not a snapshot', () => {
    refused(
      manifestWith((m) => {
        (m.layers as unknown[]).push(null);
      }),
      /: .+/,
    );
  });
});

describe('serializeConfig and parseConfig', () => {
  const manifest = manifestFixture({ files: { ...manifestFixture().files, disk: { name: FROZEN_DISK, bytes: 196_616, checksum: 'xxh128-4m:00' } } });

  it('round-trip a config with each kind of disk backing, and none', () => {
    const configs: SnapshotArtifactConfig[] = [
      { artifactFormat: 1, manifest: manifestFixture(), diskBacking: undefined },
      { artifactFormat: 1, manifest, diskBacking: { imageDir: 'debian-x', file: 'disk.qcow2' } },
      { artifactFormat: 1, manifest, diskBacking: { path: '/var/lib/images/base.qcow2' } },
    ];
    for (const config of configs) {
      const text = serializeConfig(config);
      expect(text.toString('utf8').endsWith('}\n')).toBe(true);
      expect(parseConfig(text, WHERE)).toEqual(config);
    }
    // A null backing (another writer's way to say none) reads as none.
    expect(parseConfig(body({ artifactFormat: 1, manifest, diskBacking: null }), WHERE).diskBacking).toBeUndefined();
  });

  function configRefused(value: Buffer, why: string | RegExp): void {
    let thrown: unknown;
    try {
      parseConfig(value, WHERE);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toMatchObject({ code: 'E_SNAPSHOT_ARTIFACT', message: expect.stringContaining(`${WHERE} is not a warmvm snapshot`) });
    expect((thrown as Error).message).toMatch(why);
    expect((thrown as Error).message).not.toMatch(TYPE_ERROR_TEXT);
  }

  it('refuses a config that is not JSON, or of another artifact format', () => {
    configRefused(Buffer.from('artifactFormat: 1'), 'its config is not JSON');
    configRefused(body({ artifactFormat: 3, manifest }), 'its config is artifact format 3; this warmvm reads formats 1 and 2');
    configRefused(body({ artifactFormat: '1', manifest }), 'its config is artifact format 1; this warmvm reads formats 1 and 2');
    configRefused(body({ manifest }), 'its config is artifact format undefined');
  });

  it('refuses a bad inner manifest, with what is wrong with it', () => {
    configRefused(body({ artifactFormat: 1, manifest: { ...manifest, format: 1 } }), 'the snapshot is format 1');
    configRefused(body({ artifactFormat: 1, manifest: { ...manifest, qemuVersion: 10 } }), 'manifest.json is not a warmvm snapshot manifest');
    configRefused(body({ artifactFormat: 1, manifest: { ...manifest, files: { memory: manifest.files.memory } } }), 'manifest.json is not a warmvm snapshot manifest');
  });

  it('refuses a config without a manifest, or with one that is not an object, saying so', () => {
    for (const inner of [undefined, null, 'manifest.json', [manifest]]) configRefused(body({ artifactFormat: 1, manifest: inner }), /manifest/);
  });

  it('refuses a malformed disk backing', () => {
    for (const diskBacking of [
      { imageDir: '../etc', file: 'disk.qcow2' },
      { imageDir: 'debian-x', file: '../../disk.qcow2' },
      { imageDir: 'debian-x' },
      { file: 'disk.qcow2' },
      {},
      { path: 42 },
      // Resolved against whatever folder the importing warmvm runs in.
      { path: 'images/base.qcow2' },
      { path: '' },
    ]) {
      configRefused(body({ artifactFormat: 1, manifest, diskBacking }), 'its disk backing is malformed');
    }
  });

  // A config comes from a registry or a file: any JSON must be refused as not a snapshot, not crash with a TypeError.
  it('refuses a config that is JSON null as not a snapshot', () => {
    for (const text of ['null', '[]', '1', '"config"']) configRefused(Buffer.from(text), /: .+/);
  });

  it('refuses a disk backing that is not an object as malformed', () => {
    configRefused(body({ artifactFormat: 1, manifest, diskBacking: 'debian-x/disk.qcow2' }), 'its disk backing is malformed');
  });

  // The unpack writes each file under the name the config's manifest gives it (pack.ts joins it to the capture folder).
  it('refuses an inner manifest whose file names are not one path component', () => {
    for (const name of ['../../escaped.raw', '/tmp/escaped.raw', 'sub/mem.raw', '..']) {
      const files = { ...manifest.files, memory: { ...manifest.files.memory, name } };
      configRefused(body({ artifactFormat: 1, manifest: { ...manifest, files } }), /.+/);
    }
  });

  // An import stores the snapshot under snapshots/<its manifest's specHash>/ (bin/commands/snapshot-transfer.ts, store()).
  it('refuses an inner manifest whose specHash cannot name a folder of the store', () => {
    for (const specHash of ['../../escaped', '/tmp/escaped', '..', '']) {
      configRefused(body({ artifactFormat: 1, manifest: { ...manifest, specHash } }), /.+/);
    }
  });
});
