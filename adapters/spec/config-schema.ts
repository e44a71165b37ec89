import * as z from 'zod/mini';
import { about, fields, flag, list, matching, oneOf, shown, shownAddress, text, wholeNumber } from './fields.js';
import { defaultSpec, GUEST_PROFILES, profileSpec, type GuestProfile } from './vm.js';

/**
 * The config file's one schema: `config.ts` parses with it (then applies the defaults, which
 * depend on the image), and `config.schema.json`, the schema editors use, is generated from it
 * (`config-json-schema.ts`).
 * Every field says what it does, its units and its default; the defaults quoted are read from
 * `vm.ts`, so the text cannot drift from what warmvm does.
 */

const demo = defaultSpec();
const debian = profileSpec('debian');
const seconds = (ms: number): number => ms / 1000;

/** A name of a setting or a secret: what a shell and systemd's EnvironmentFile= take. */
const NAME = /^[A-Z_][A-Z0-9_]*$/;
/** sha256 or sha512, lowercase hex of the algorithm's length. */
const DIGEST = /^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$/;
const DIGEST_HEX_LENGTH: Record<string, number> = { sha256: 64, sha512: 128 };

/** A file on this host: `what` it is, then `more` about it. */
const path = (what: string, more = '') => about(text(), { description: `${what}: a path, relative to this file's folder or absolute.${more ? ` ${more}` : ''}` });

const diskFormat = about(oneOf(['qcow2', 'raw']), { description: 'The disk image\'s format: "qcow2" (default) or "raw".', default: 'qcow2' });
const kernel = z.optional(path('A Linux kernel QEMU boots directly (-kernel)', "Default: the disk's own boot loader."));
const initrd = z.optional(path('An initramfs for the kernel (-initrd)', 'Only used with a kernel.'));
const append = z.optional(about(text(), { description: 'The kernel command line (-append); only used with a kernel. Default: none with a disk image.' }));
const userData = z.optional(
  path(
    'A cloud-init NoCloud user-data file',
    'warmvm writes it (with metaData) on a seed ISO labelled cidata in $WARMVM_HOME/images/, attached read-only at every launch. ' +
      'Every cold boot runs it on a fresh overlay; a resume does not (have it print a readyMarker).',
  ),
);
const metaData = z.optional(path('A cloud-init meta-data file for the seed ISO', 'Needs userData. Default: an instance id derived from the user-data.'));
const urlProblem = (iss: { input?: unknown }): string => `must be an http: or https: address of a disk image, got ${shownAddress(iss.input)}`;
const metaDataNeedsUserData = z.refine<{ metaData?: string | undefined; userData?: string | undefined }>((image) => image.metaData === undefined || image.userData !== undefined, {
  path: ['metaData'],
  error: 'is only used with image.userData (the cloud-init seed needs user-data)',
});

const demoImage = about(
  fields({
    demo: about(z.literal(true, { error: (iss) => `must be true, got ${shown(iss.input)}` }), {
      description: 'The embedded demo guest: a Linux kernel and a 4 MB initramfs warmvm builds from Debian packages (cached in $WARMVM_HOME/images/).',
    }),
  }),
  { title: 'demo guest', description: 'The embedded demo guest (the default image).' },
);

const profileImage = about(
  fields({
    profile: about(oneOf(GUEST_PROFILES as readonly [GuestProfile, ...GuestProfile[]]), {
      description: 'A guest warmvm builds itself: "debian" is Debian 12 with cloud-init and a docker workload (`warmvm guest build --profile debian`).',
    }),
  }),
  {
    title: 'profile',
    description:
      `A guest warmvm builds itself. A profile brings its own defaults, which the other fields override: "debian" has memoryMb ${debian.memoryMb}, cpus ${debian.cpus}, ` +
      `its own rotation and readyMarker, and longer bounds (bootSeconds ${seconds(debian.bounds.bootMs)}, healthSeconds ${seconds(debian.bounds.healthMs)}).`,
  },
);

/** What a disk image boots with besides itself, whether it is a local file or downloaded. */
const diskBootFields = { kernel, initrd, append, userData, metaData };

const urlImage = about(
  fields({
    url: about(
      // The protocol again as a pattern: editors see only the JSON Schema.
      z.url({ protocol: /^https?$/, error: urlProblem }).check(z.regex(/^[Hh][Tt][Tt][Pp][Ss]?:\/\//, { error: urlProblem })),
      {
        description:
          'The http(s) address of a qcow2 or raw disk image, maybe xz- or zstd-compressed: downloaded once into $WARMVM_HOME/images/, by its digest. ' +
          'Plain http: is allowed: the digest, checked before the image is used, is what makes the download safe.',
        examples: ['https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2'],
      },
    ),
    digest: about(matching(DIGEST, digestProblem), {
      description:
        'The image\'s checksum as it is downloaded (compressed, if it is): "sha256:" and 64 lowercase hex digits, or "sha512:" and 128 (what sha256sum or sha512sum prints).',
      examples: ['sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
    }),
    format: z.optional(diskFormat),
    compression: z.optional(
      about(oneOf(['xz', 'zstd']), {
        description: 'How the download is compressed: "xz" or "zstd". Default: from the address\'s path, ".xz" is xz, ".zst" or ".zstd" is zstd, anything else is not compressed.',
      }),
    ),
    ...diskBootFields,
  }).check(metaDataNeedsUserData),
  {
    title: 'disk image to download',
    description: 'A disk image downloaded once and checked by its digest; then it is used like a "disk": never written, each start runs on a fresh overlay.',
    dependentRequired: { metaData: ['userData'] },
  },
);

const diskImage = about(
  fields({
    disk: path('A qcow2 or raw disk image', 'It is never written: each start runs on a fresh qcow2 overlay in the instance folder.'),
    format: z.optional(diskFormat),
    ...diskBootFields,
  }).check(metaDataNeedsUserData),
  {
    title: 'disk image',
    description: 'Your own disk image (a cloud image, for example), booted by its own boot loader unless a kernel is given.',
    dependentRequired: { metaData: ['userData'] },
  },
);

const kernelImage = about(
  fields({
    kernel: path('A Linux kernel QEMU boots directly (-kernel)'),
    initrd,
    append: z.optional(about(text(), { description: 'The kernel command line (-append). Default "console=ttyS0".' })),
  }),
  { title: 'kernel', description: 'A kernel (and an initramfs) with no disk.' },
);

const image = about(
  z.union([demoImage, profileImage, urlImage, diskImage, kernelImage], {
    error: (iss) =>
      iss.code === 'invalid_union'
        ? `must name a "disk" (a qcow2 or raw image), a "url" (a disk image to download), a "kernel" (with an optional "initrd"), a "profile" ("debian"), or be {"demo": true}; got ${shown(iss.input)}`
        : undefined,
  }),
  { description: 'What the guest boots. Default {"demo": true}. A snapshot belongs to its image: another image captures anew.' },
);

const port = (what: string) => about(wholeNumber(1, 65535), { description: what });

const ports = about(
  list(
    about(
      fields({
        guest: port("The guest's TCP port (1 to 65535); each guest port is forwarded once."),
        host: z.optional(port('A fixed port on 127.0.0.1 (1 to 65535), checked free before launch. Default: a free one, chosen at every start.')),
      }),
      { description: 'A guest TCP port forwarded from 127.0.0.1.' },
    ),
    '[{"guest": 8080}]',
  ).check(
    z.superRefine((entries, ctx) => {
      const seen = new Set<number>();
      for (const [index, entry] of entries.entries()) {
        if (seen.has(entry.guest)) ctx.addIssue({ code: 'custom', path: [index, 'guest'], message: `forwards guest port ${entry.guest} twice` });
        seen.add(entry.guest);
      }
    }),
  ),
  { description: `Guest TCP ports forwarded from 127.0.0.1. Default [{"guest": ${demo.ports[0]?.guest}}] (the demo guest's workload).` },
);

const health = about(
  list(
    about(
      fields({
        port: port('The guest port to ask; it must be one of "ports".'),
        path: z.optional(
          about(
            matching(/^\//, (input) => `must start with "/", got ${shown(input)}`),
            { description: 'The HTTP path asked, from "/". Default "/".', default: '/' },
          ),
        ),
        status: z.optional(about(wholeNumber(100, 599), { description: 'The HTTP status that counts as healthy (100 to 599). Default 200.', default: 200 })),
      }),
      { description: 'An HTTP GET on a forwarded guest port, through its host port.' },
    ),
    '[{"port": 8080, "path": "/health"}]',
  ),
  {
    description:
      'HTTP checks that must all answer their status before a start (cold boot or resume) is done, each within bounds.healthSeconds. ' +
      `Default [{"port": ${demo.health[0]?.port}, "path": "${demo.health[0]?.path}"}] (the demo guest's).`,
  },
);

const rotation = about(
  z.union(
    [
      z.literal(false),
      about(
        fields({
          command: about(
            matching(/^\//, (input) => `must be an absolute path inside the guest, got ${shown(input)}`),
            {
              description: 'An absolute path inside the guest, run through the guest agent (guest-exec) with NAME=hex lines on its stdin, never on a command line; it must exit 0.',
              examples: ['/usr/local/bin/rotate-secrets'],
            },
          ),
          secrets: about(
            list(
              matching(NAME, (input) => `must match [A-Z_][A-Z0-9_]*, got ${shown(input)}`),
              '["API_KEY"]',
            ).check(
              z.minLength(1, { error: (iss) => `must be a non-empty list of names like ["API_KEY"], got ${shown(iss.input)}` }),
              z.refine((names: string[]) => new Set(names).size === names.length, { error: 'names a secret twice' }),
            ),
            {
              description:
                "The secrets' names ([A-Z_][A-Z0-9_]*, each once). At every resume each gets 32 random bytes, as hex, also written to $WARMVM_HOME/instances/<name>/secrets.env (mode 0600).",
              uniqueItems: true,
              examples: [['API_KEY', 'DB_PASSWORD']],
            },
          ),
        }),
        { description: 'A command in the guest that takes fresh secrets.' },
      ),
    ],
    { error: (iss) => (iss.code === 'invalid_union' ? `must be false or {"command": "/abs/path/in/guest", "secrets": ["NAME", ...]}, got ${shown(iss.input)}` : undefined) },
  ),
  {
    description:
      'How the guest takes fresh secrets after every resume (and after a cold boot that is not captured), through the guest agent; false: none. ' +
      "Default: the demo guest's and the debian profile's own command; none for a disk or url image.",
  },
);

const bound = (what: string, defaultMs: number, debianMs: number) =>
  z.optional(
    about(wholeNumber(1, 3600), {
      description: `${what}, in seconds (1 to 3600). Default ${seconds(defaultMs)}${debianMs === defaultMs ? '' : ` (${seconds(debianMs)} with the debian profile)`}.`,
    }),
  );

/** The config file: every field optional, the defaults those of the image's guest. */
export const configSchema = about(
  fields({
    $schema: z.optional(
      about(z.string({ error: (iss) => `must be a string (the address of this file's JSON Schema), got ${shown(iss.input)}` }), {
        description: 'The JSON Schema this file follows, for editors: "./node_modules/warmvm/config.schema.json". warmvm ignores it.',
      }),
    ),
    memoryMb: z.optional(
      about(wholeNumber(64, 1024 * 1024), { description: `The guest's RAM in MiB (64 to 1048576). Default ${demo.memoryMb} (${debian.memoryMb} with the debian profile).` }),
    ),
    cpus: z.optional(about(wholeNumber(1, 256), { description: `The guest's vCPUs (1 to 256). Default ${demo.cpus} (${debian.cpus} with the debian profile).` })),
    accel: z.optional(
      about(oneOf(['auto', 'kvm', 'tcg', 'hvf']), {
        description:
          'The accelerator. "auto" (default) uses KVM (HVF on macOS) only after a bounded probe saw a guest kernel run under it, else TCG; the verdict is cached in $WARMVM_HOME/accel-probe.json. "kvm", "tcg" or "hvf" forces one.',
        default: 'auto',
      }),
    ),
    cpuModel: z.optional(
      about(text(), { description: 'QEMU\'s CPU model (-cpu). Default "host" under KVM or HVF, "qemu64" under TCG. A snapshot resumes only with the model it was captured with.' }),
    ),
    image: z.optional(image),
    ports: z.optional(ports),
    health: z.optional(health),
    agent: z.optional(
      about(flag(), {
        description: 'Whether the guest runs qemu-guest-agent on the org.qemu.guest_agent.0 port: booting waits for it, and rotation needs it. Default true.',
        default: true,
      }),
    ),
    rotation: z.optional(rotation),
    readyMarker: z.optional(
      about(
        matching(/^[^\n]*\S[^\n]*$/, () => 'must be one non-empty line of the serial console'),
        {
          description:
            'A line the guest prints on its serial console once it is ready (provisioning finished, the workload up). A cold boot waits for it after the guest agent answers and before probing health, ' +
            `within bounds.bootSeconds, so a capture never freezes a guest halfway through provisioning. Default: none, the agent's answer is enough ("${debian.readyMarker}" with the debian profile).`,
          examples: ['cloud-init finished'],
        },
      ),
    ),
    settings: z.optional(
      about(
        z.record(
          matching(NAME, () => 'is not a NAME of [A-Z_][A-Z0-9_]*'),
          // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
          matching(/^[^\u0000-\u001f\u007f]*$/, () => 'must be one line of printable text'),
          { error: (iss) => `must be an object of NAME: "value", got ${shown(iss.input)}` },
        ),
        {
          description:
            'Settings for the guest: NAME ([A-Z_][A-Z0-9_]*) to a one-line value; not for secrets. At every launch warmvm writes them, with WARMVM_INSTANCE, as settings.env on an ISO labelled warmvm-rt, ' +
            'attached read-only, which the guest reads when it boots. A snapshot keeps what its guest read: changing them captures anew. Default: none (an empty set with the debian profile).',
          examples: [{ LOG_LEVEL: 'debug' }],
        },
      ),
    ),
    snapshot: z.optional(
      about(
        fields({
          pull: z.optional(
            about(
              matching(/^[^/\s]+\/[^\s]+$/, (input) => `must be a registry reference HOST[:PORT]/REPO[:TAG|@DIGEST], got ${shown(input)}`),
              {
                description:
                  'An OCI registry reference HOST[:PORT]/REPO[:TAG|@DIGEST]: with no usable snapshot of this config in the store, a start pulls one from there and resumes it; a failed pull boots cold (a warning says why).',
                examples: ['ghcr.io/acme/backend-snapshot:main'],
              },
            ),
          ),
        }),
        { description: "Where a start finds a snapshot when the store has none of this config's." },
      ),
    ),
    bounds: z.optional(
      about(
        fields({
          launchSeconds: bound("QEMU's launch, until its QMP socket answers", demo.bounds.launchMs, debian.bounds.launchMs),
          bootSeconds: bound('A cold boot, until the guest agent answers (and the readyMarker is printed)', demo.bounds.bootMs, debian.bounds.bootMs),
          healthSeconds: bound('The health checks, until every one answers its status', demo.bounds.healthMs, debian.bounds.healthMs),
          stopSeconds: bound("A stop, from SIGTERM to SIGKILL (and QEMU's quit after a capture)", demo.bounds.stopMs, debian.bounds.stopMs),
          incomingSeconds: bound('A resume, loading the snapshot until the guest is paused, and then running', demo.bounds.incomingMs, debian.bounds.incomingMs),
          rotateSeconds: bound('The rotation of secrets through the guest agent', demo.bounds.rotateMs, debian.bounds.rotateMs),
          captureSeconds: bound('A capture, writing the VM to the snapshot and storing it', demo.bounds.captureMs, debian.bounds.captureMs),
        }),
        { description: 'How long each step may take before it fails with a named error.' },
      ),
    ),
  }),
  {
    title: 'warmvm config',
    description: "The config of a warmvm guest (warmvm start --config FILE). Every field is optional; relative paths are taken from this file's folder.",
  },
);

export type ConfigInput = z.output<typeof configSchema>;

function digestProblem(input: unknown): string {
  const expected = 'must be "sha256:" and 64 lowercase hex digits, or "sha512:" and 128';
  if (typeof input !== 'string') return `${expected}, got ${shown(input)}`;
  const [algorithm = '', hex = ''] = input.split(/:(.*)/s);
  const length = DIGEST_HEX_LENGTH[algorithm];
  if (length === undefined) return `${expected}, got ${shown(input)}`;
  if (!/^[0-9a-f]*$/.test(hex)) return `must be "${algorithm}:" and lowercase hex digits (0-9, a-f), got ${shown(input)}`;
  const other = Object.entries(DIGEST_HEX_LENGTH).find(([name]) => name !== algorithm);
  return `must have ${length} hex digits after "${algorithm}:"${other ? ` (${other[1]} after "${other[0]}:")` : ''}, got ${hex.length} in ${shown(input)}`;
}
