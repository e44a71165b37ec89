/** A host command the demo guest's build runs, as `warmvm doctor` reports it. */
export interface DemoGuestRequirement {
  command: string;
  why: string;
  fix: string;
  /** The build works without it, only slower or less well. */
  optional: boolean;
}

/** Host commands the build runs; `warmvm doctor` checks each. */
export function demoGuestRequirements(): DemoGuestRequirement[] {
  const onDebian = 'the demo guest is built from Debian packages: build it on Debian 12 (or give the config your own "kernel" or "disk")';
  return [
    { command: 'apt-cache', why: 'resolves the Debian package versions the demo guest is built from', fix: `run "apt-get update"; ${onDebian}`, optional: false },
    { command: 'apt-get', why: 'downloads the Debian packages of the demo guest', fix: `run "apt-get update"; ${onDebian}`, optional: false },
    { command: 'dpkg-deb', why: 'unpacks the downloaded Debian packages', fix: onDebian, optional: false },
    { command: 'xz', why: 'decompresses the guest kernel once, so it boots about 3 s faster under TCG', fix: 'apt-get install xz-utils', optional: true },
  ];
}
