import type { CaptureWait, SnapshotChoice } from '../../machines/start.js';
import { FAILURES_BEFORE_SET_ASIDE } from '../../shapes/snapshot-policy.js';
import { captureBusy, type SnapshotSide } from './fake-world.js';

/*
 * One config's snapshot store, shared by several starts (clones of one config), as a model:
 * adapters/snapshot/store.ts, adapters/instance/lock.ts and resume-failures.ts reduced to what
 * the starts can see of them. A capture writes a version in a private folder (`writing`), one
 * rename publishes it (`published`: what `snapshots/<key>/` holds); it leaves by a set-aside
 * (`setAside`) or a later commit (`replaced`); an unfinished one is dropped (`dropped`). A resume
 * pins the folder it finds (pinSnapshot) and opens its files through the pin, whatever is renamed
 * meanwhile; a file opened by path once its folder is removed (a replaced version, a set-aside one
 * pruned, a dropped one: `gone`) is not found. The model notes every broken rule in `violations`:
 *   (a) at most one capture of the config at a time: one run between taking the lock and
 *       publishing (or letting go), never two captures being written by holders of the lock,
 *       nothing published but a whole version by the lock's holder;
 *   (b) a run maps (and loads) only a finished version, never one being written;
 *   (c) a version's files are written only while it is `writing`, and never once a run mapped it;
 *   (d) a resume's QEMU maps the memory and loads the device state of one version, the one whose
 *       manifest it checked (the pin);
 *   (e) a set-aside moves only the version the run found wanting.
 * `StoreFaults` breaks the model on purpose, to see each check fail. Races that (a)-(e) allow but
 * that look wrong go to `observations`, reported rather than failed on:
 *   (f) a snapshot set aside for its guest failing after `cont` a second time in a row, though its
 *       resume-failures file holds fewer than that (a healthy clone cleared it meanwhile);
 *   (g) a resume's QEMU opens, as its disk overlay's backing file, the disk of another version
 *       than the memory it mapped: the overlay names `snapshots/<key>/disk.qcow2`, not the pin.
 */

export type VersionState = 'writing' | 'published' | 'setAside' | 'replaced' | 'dropped';
/** The files of a version that hold its data; verified.json, resume-failures and reason.txt are bookkeeping beside them. */
export type DataFile = 'state' | 'memory' | 'disk' | 'manifest';
const DATA_FILES: readonly DataFile[] = ['state', 'memory', 'disk', 'manifest'];

/** adapters/snapshot/store.ts SET_ASIDE_KEEP: a set-aside prunes all but the newest two. */
const SET_ASIDE_KEEP = 2;
/** steps/start.ts CAPTURE_POLL_MS. */
const CAPTURE_POLL_MS = 100;
/** A failure reason (`<state>: <message>`) of a guest that ran from the snapshot and then failed (shapes/snapshot-policy.ts). */
const AFTER_CONT = /^resume\.(rotating|probing): /;

export interface Version {
  id: number;
  /** The run that captured it; -1 for one that was there before the runs began. */
  writer: number;
  state: VersionState;
  files: Set<DataFile>;
  /** Its folder was removed (replaced, pruned or dropped): what was open or mapped stays whole, nothing can be opened anew. */
  gone: boolean;
  /** Still being written when its writer let go of the capture lock (recoverVm does so first): it must never be published. */
  abandoned: boolean;
  /** Runs whose QEMU mapped its memory file, and how. */
  mappedBy: Map<number, 'private' | 'shared'>;
  /** Its resume-failures file: resumes in a row whose guest failed after `cont`. */
  failures: number;
}

/** Ways to break the model on purpose: each must make one of (a)-(e) fail. */
export interface StoreFaults {
  /** (a) tryLock always succeeds, whoever holds the lock. */
  skipLock?: boolean;
  /** (b) QEMU maps the newest version in the store (a capture folder included), not the pinned one. */
  mapNewest?: boolean;
  /** (c) QEMU maps the memory file shared, not private: the guest's writes land in the snapshot. */
  sharedMapping?: boolean;
  /** (d) QEMU reads state.raw by the snapshot's path, not through the pin (as before pinSnapshot). */
  unpinnedState?: boolean;
  /** (e) setAsideSnapshot sets aside what the folder holds without checking it is the snapshot the run resumed. */
  uncheckedSetAside?: boolean;
}

/** A step's error; its code in the message too, as the fakes of fake-world.ts say it (invariant 6 reads reasons). */
function failure(code: string, message: string): Error & { code: string } {
  return Object.assign(new Error(`${code}: ${message}`), { code });
}

/** A file operation on a folder that is gone (dropped under a step still writing): ENOENT, as the real one. */
function gone(what: string): Error & { code: string } {
  return Object.assign(new Error(`ENOENT: ${what}`), { code: 'ENOENT' });
}

/** How a capture folder comes to be: by the lock's holder, by a pauseVm that outlived its capture (recovered already), or after its run ended. */
export type CaptureDirKind = 'capture' | 'late' | 'orphan';

export class SnapshotStoreModel {
  readonly versions: Version[] = [];
  /** What `snapshots/<key>/` holds: the published version, if any. */
  current: Version | undefined;
  lockHolder: number | undefined;
  readonly violations: string[] = [];
  /** Races the steps allow that (a)-(e) do not forbid, noted to be counted and reported: see the clones test. */
  readonly observations: string[] = [];
  /** What happened, in order, for a failing property's message. */
  readonly log: string[] = [];
  /** Runs between taking the capture lock and publishing or letting go, counted apart from the lock itself. */
  private readonly holding = new Set<number>();
  /** Runs that have not ended yet. */
  readonly active = new Set<number>();
  /** The set-aside folders of the key, oldest first: the newest SET_ASIDE_KEEP are kept. */
  private readonly asides: Version[] = [];

  constructor(
    readonly faults: StoreFaults = {},
    initial: { failures: number } | undefined = undefined,
  ) {
    if (initial) {
      const version = this.newVersion(-1);
      for (const file of DATA_FILES) version.files.add(file);
      version.state = 'published';
      version.failures = initial.failures;
      this.current = version;
    }
  }

  tryLock(run: number): { lock: true } | { holder: number } {
    if (this.lockHolder !== undefined && this.lockHolder !== run && !this.faults.skipLock) return { holder: this.lockHolder };
    this.lockHolder = run;
    this.holding.add(run);
    this.note(run, 'takes the capture lock');
    // (a) Checked on the runs that hold it, not on the lock: two at once is two captures that may overlap.
    if (this.holding.size > 1) this.violations.push(`(a) runs ${[...this.holding].join(' and ')} hold the capture lock at once`);
    return { lock: true };
  }

  /** The lock file removed (InstanceLock.release goes by pid: whichever lock object of the run it was). */
  release(run: number): void {
    if (!this.holding.delete(run)) return;
    if (this.lockHolder === run) this.lockHolder = undefined;
    this.note(run, 'lets go of the capture lock');
    for (const version of this.versions) {
      if (version.writer !== run || version.state !== 'writing' || version.abandoned) continue;
      version.abandoned = true;
      this.note(run, `leaves capture folder ${version.id} unfinished without the lock`);
    }
  }

  /**
   * createCaptureDir: a private folder beside the snapshot, not visible as one until committed.
   * `late`: made by a pauseVm that outlived its bound, once recoverVm had let go of the lock (and
   * found no folder to drop): nothing writes it, the run's cleanup drops it. `orphan`: made after
   * the run ended: the closed cleanup stack drops it at once.
   */
  createCaptureDir(run: number, kind: CaptureDirKind): Version {
    const version = this.newVersion(run);
    if (kind === 'orphan') {
      version.state = 'dropped';
      version.gone = true;
      this.note(run, `creates capture folder ${version.id} after its run ended, and drops it at once`);
      return version;
    }
    if (kind === 'late') {
      version.abandoned = true;
      this.note(run, `creates capture folder ${version.id} after its capture was recovered`);
      return version;
    }
    const writing = this.versions.filter((other) => other !== version && other.state === 'writing' && !other.abandoned);
    if (writing.length > 0) this.violations.push(`(a) run ${run} starts a capture while version ${writing.map((v) => `${v.id} (run ${v.writer})`).join(', ')} is being written`);
    if (!this.holding.has(run)) this.violations.push(`(a) run ${run} starts a capture without the capture lock`);
    this.note(run, `creates capture folder ${version.id}`);
    return version;
  }

  write(run: number, version: Version, file: DataFile): void {
    if (version.gone) throw gone(`capture folder ${version.id} was dropped`);
    if (version.state !== 'writing') this.violations.push(`(c) run ${run} writes ${file} of version ${version.id}, which is ${version.state}`);
    if (version.mappedBy.size > 0) this.violations.push(`(c) run ${run} writes ${file} of version ${version.id}, mapped by run ${[...version.mappedBy.keys()].join(', ')}`);
    version.files.add(file);
  }

  /** commitCapture: the one rename that publishes a finished capture in place of the old snapshot (whose folder is then removed). */
  commit(run: number, version: Version): void {
    if (version.gone) throw gone(`capture folder ${version.id} was dropped`);
    const missing = DATA_FILES.filter((file) => !version.files.has(file));
    if (missing.length > 0) this.violations.push(`(a) run ${run} publishes version ${version.id} without its ${missing.join(', ')}`);
    if (!this.holding.has(run))
      this.violations.push(
        `(a) run ${run} publishes version ${version.id} without the capture lock${version.abandoned ? ', having let go of it while the capture was unfinished' : ''}`,
      );
    if (this.current) {
      this.current.state = 'replaced';
      this.current.gone = true;
    }
    version.state = 'published';
    this.current = version;
    this.note(run, `publishes version ${version.id}`);
  }

  drop(run: number, version: Version): void {
    if (version.state !== 'writing') return;
    version.state = 'dropped';
    version.gone = true;
    this.note(run, `drops capture folder ${version.id}`);
  }

  /**
   * setAside: whatever `snapshots/<key>/` holds now is moved away, a reason beside it, and the
   * oldest set-aside folders beyond SET_ASIDE_KEEP removed; `judged` is the version the run found wanting.
   */
  setAside(run: number, reason: string, judged: Version | undefined): Version | undefined {
    const aside = this.current;
    if (!aside) return undefined;
    if (judged && aside !== judged) this.violations.push(`(e) run ${run} sets version ${aside.id} aside for what it found in version ${judged.id}`);
    aside.state = 'setAside';
    this.current = undefined;
    this.asides.push(aside);
    this.note(run, `sets version ${aside.id} aside: ${reason}`);
    for (const pruned of this.asides.splice(0, Math.max(0, this.asides.length - SET_ASIDE_KEEP))) {
      pruned.gone = true;
      this.note(run, `removes set-aside version ${pruned.id}`);
    }
    return aside;
  }

  /** QEMU opens the memory file it is given (the pin's): one whose folder is gone cannot be opened. */
  mapMemory(run: number, version: Version | undefined): Version | undefined {
    if (!version || version.gone) return undefined;
    if (version.state === 'writing') this.violations.push(`(b) run ${run} maps the memory of version ${version.id}, which is being written`);
    version.mappedBy.set(run, this.faults.sharedMapping ? 'shared' : 'private');
    this.note(run, `maps version ${version.id}`);
    return version;
  }

  /** QEMU opens the disk overlay, and through it its backing file by the path qemu-img wrote in it: `snapshots/<key>/disk.qcow2`. */
  openBacking(run: number, mapped: Version): Version | undefined {
    const backing = this.current;
    if (!backing) return undefined;
    if (backing !== mapped)
      this.observations.push(`(g) run ${run}'s QEMU opens the disk of version ${backing.id} (its overlay's backing file, by path) under the memory of version ${mapped.id}`);
    return backing;
  }

  /** QEMU reads state.raw for the incoming migration: `version` is the file it was given. */
  loadState(run: number, version: Version | undefined, mapped: Version | undefined, checked: Version | undefined): Version | undefined {
    if (!version || version.gone) return undefined;
    if (version.state === 'writing') this.violations.push(`(b) run ${run} loads the device state of version ${version.id}, which is being written`);
    if (version !== mapped || version !== checked)
      this.violations.push(`(d) run ${run} loads the device state of version ${version.id} into the memory of version ${mapped?.id}, having checked version ${checked?.id}`);
    return version;
  }

  /** The guest of a resumed QEMU writes its RAM: a private mapping copies the page, a shared one writes the file. */
  guestWrites(run: number, version: Version): void {
    if (version.mappedBy.get(run) === 'shared') this.write(run, version, 'memory');
  }

  /** Every run ended (and what it left running in the background settled): nothing may be held or half written. */
  leftovers(): string[] {
    const left: string[] = [];
    if (this.lockHolder !== undefined || this.holding.size > 0) left.push(`(a) the capture lock is still held by run ${[...this.holding].join(', ')} after every run ended`);
    for (const version of this.versions) if (version.state === 'writing') left.push(`(a) capture folder ${version.id} of run ${version.writer} is left after every run ended`);
    return left;
  }

  note(run: number, what: string): void {
    this.log.push(`run ${run} ${what}`);
  }

  private newVersion(writer: number): Version {
    const version: Version = { id: this.versions.length, writer, state: 'writing', files: new Set(), gone: false, abandoned: false, mappedBy: new Map(), failures: 0 };
    this.versions.push(version);
    return version;
  }
}

/** An InstanceLock of the capture lock file: released once (the model's lock goes by run, as the file goes by pid). */
interface HeldLock {
  released: boolean;
}

type Verdict = { usable?: Extract<SnapshotChoice, { status: 'usable' }>; reason?: string; found?: Version };

/**
 * One start's steps on the shared store, in the order and with the awaits of steps/start.ts,
 * steps/capture.ts, steps/resume.ts and steps/hand-off.ts: each await is a `tick`, where another
 * run may go first. What the real Run holds (run.captureLock, run.captureDir, run.manifest,
 * run.pinned) it holds too, and `cleanup` is the run's cleanup stack at its end.
 */
export class StoreSide implements SnapshotSide {
  /** The version whose manifest the run holds (run.manifest): read by `judge`, written by a capture, read again through the pin. */
  manifestOf: Version | undefined;
  /** The version the resume pinned (run.pinned). */
  pinned: Version | undefined;
  /** The version the resume's QEMU mapped. */
  mapped: Version | undefined;
  /** The version whose disk the resume's QEMU opened as its overlay's backing file. */
  backing: Version | undefined;
  /** run.captureLock: cleared whenever it is let go. */
  private captureLock: HeldLock | undefined;
  /** The capture locks on the run's cleanup stack ('release the capture lock'). */
  private readonly onCleanup: HeldLock[] = [];
  private captureDir: Version | undefined;
  /** storeSnapshot while it runs (steps/capture.ts run.storing): recovering waits for it. */
  private storing: Promise<string> | undefined;
  /** The run's cleanup stack ran: what comes after is cleaned at once (CleanupStack's `closed`). */
  private closed = false;

  constructor(
    private readonly model: SnapshotStoreModel,
    readonly run: number,
    private readonly tick: (label: string) => Promise<void>,
  ) {
    model.active.add(run);
  }

  /** chooseSnapshot: judged without the lock; one not usable judged again, and set aside, only under it. */
  async choose(capture: boolean): Promise<SnapshotChoice> {
    // setAsideOldFormat: a snapshot under the instance's name (none in the model) is looked for first.
    await this.step('looks for an old-format snapshot');
    const first = await this.judge();
    if (first.usable) return first.usable;
    await this.step('tries the capture lock');
    const taken = this.model.tryLock(this.run);
    if ('holder' in taken) return capture ? { status: 'capturing', holder: taken.holder } : { status: 'missing' };
    return await this.underCaptureLock({ released: false }, capture);
  }

  async awaitCapture(_signal: AbortSignal, sleep: (ms: number) => Promise<void>): Promise<CaptureWait> {
    for (;;) {
      await this.step('tries the capture lock (waiting)');
      const taken = this.model.tryLock(this.run);
      if ('lock' in taken) return await this.underCaptureLock({ released: false }, true);
      // The signal ends the wait.
      await sleep(CAPTURE_POLL_MS);
    }
  }

  /** setAsideResumed: under the lock, the snapshot the run resumed set aside, if it is still the one there. */
  async setAside(reason: string): Promise<{ setAside: string | undefined; capturing: boolean }> {
    let lock = this.captureLock;
    if (!lock) {
      await this.step('tries the capture lock (set aside)');
      const taken = this.model.tryLock(this.run);
      if ('holder' in taken) return { setAside: undefined, capturing: false };
      lock = { released: false };
      this.holdCaptureLock(lock);
    }
    await this.step('reads the snapshot (set aside)');
    const found = this.model.current;
    const resumed = this.manifestOf;
    const unreadable = found !== undefined && !found.files.has('manifest');
    if (this.model.faults.uncheckedSetAside || !found || unreadable || resumed === undefined || found === resumed) {
      await this.step('sets the snapshot aside');
      const aside = this.model.setAside(this.run, reason, unreadable ? found : resumed);
      if (aside && AFTER_CONT.test(reason) && aside.failures < FAILURES_BEFORE_SET_ASIDE)
        this.model.observations.push(`(f) run ${this.run} sets version ${aside.id} aside for its guest failing after cont, with ${aside.failures} failed resume(s) in its file`);
      return { setAside: aside && `version ${aside.id}`, capturing: true };
    }
    // A whole new one is there already: nothing to set aside, nothing to capture.
    this.captureLock = undefined;
    await this.release(lock, 'set aside: another snapshot is there');
    return { setAside: undefined, capturing: false };
  }

  /** pauseVm: the capture lock unless held, then the capture folder. */
  async beginCapture(): Promise<void> {
    if (!this.captureLock) {
      await this.step('tries the capture lock (capture)');
      const taken = this.model.tryLock(this.run);
      if ('holder' in taken) throw captureBusy(taken.holder);
      this.holdCaptureLock({ released: false });
    }
    await this.step('creates its capture folder');
    const kind: CaptureDirKind = this.closed ? 'orphan' : this.captureLock ? 'capture' : 'late';
    const dir = this.model.createCaptureDir(this.run, kind);
    if (kind !== 'orphan') this.captureDir = dir;
  }

  async migrate(): Promise<void> {
    const dir = this.need(this.captureDir, 'the capture folder');
    await this.step('migrates the device state to file');
    this.model.write(this.run, dir, 'state');
  }

  /** storeSnapshot: files moved in and frozen (the signal stops the checksums, nothing after them), manifest, commit, lock let go. */
  async store(signal: AbortSignal): Promise<string> {
    const storing = this.storeOnce(signal);
    this.storing = storing;
    return await storing;
  }

  private async storeOnce(signal: AbortSignal): Promise<string> {
    const dir = this.need(this.captureDir, 'the capture folder');
    await this.step('moves the memory file in');
    this.model.write(this.run, dir, 'memory');
    await this.step('moves the disk overlay in');
    this.model.write(this.run, dir, 'disk');
    await this.step('freezes the files');
    if (signal.aborted) throw failure('E_ABORTED', 'the checksum was cut short');
    await this.step('writes the manifest');
    this.model.write(this.run, dir, 'manifest');
    await this.step('records the files as checked');
    if (dir.gone) throw gone(`capture folder ${dir.id} was dropped`);
    // steps/capture.ts: a store past its bound (or Ctrl-C) gives up before it publishes.
    if (signal.aborted) throw failure('E_ABORTED', 'storing the snapshot was cancelled');
    await this.step('commits the capture');
    this.model.commit(this.run, dir);
    this.captureDir = undefined;
    this.manifestOf = dir;
    await this.releaseCaptureLock('stored');
    await this.step('notes the snapshot key');
    return `version ${dir.id}`;
  }

  /** recoverVm: a store still on its way settles first; then the unfinished capture folder dropped, then the capture lock let go. */
  async recover(): Promise<void> {
    await this.storing?.catch(() => undefined);
    const dir = this.captureDir;
    if (dir) {
      await this.step('drops the unfinished capture');
      this.model.drop(this.run, dir);
      this.captureDir = undefined;
    }
    await this.releaseCaptureLock('recovering');
  }

  /** prepareState: the folder pinned, its manifest read and its files checked through the pin; the overlay made over the real path. */
  async prepare(): Promise<void> {
    this.mapped = undefined;
    this.backing = undefined;
    await this.step('pins the snapshot folder');
    const pinned = this.model.current;
    if (!pinned) throw failure('E_SNAPSHOT_MISSING', 'the snapshot is gone');
    this.pinned = pinned;
    this.model.note(this.run, `pins version ${pinned.id}`);
    await this.step('reads the manifest through the pin');
    if (pinned.gone || !pinned.files.has('manifest')) throw failure('E_SNAPSHOT_CORRUPT', "the snapshot's manifest.json cannot be read");
    this.manifestOf = pinned;
    await this.step('checks the files through the pin');
    if (pinned.gone) throw failure('E_SNAPSHOT_MISSING', "the snapshot's mem.raw is missing");
    await this.step('chooses its ports');
    await this.step('writes its runtime disk');
    // createOverlay: qemu-img reads the backing file's header by the path it records in the overlay.
    await this.step('creates its disk overlay');
    if (!this.model.current) throw failure('E_OVERLAY', 'cannot create a disk overlay over snapshots/<key>/disk.qcow2');
  }

  /** QEMU starting: the memory file through the pin (or, broken, the newest folder's), then the overlay and its backing file by path. */
  async map(): Promise<void> {
    await this.step('QEMU maps the memory file');
    const wanted = this.model.faults.mapNewest ? this.model.versions.at(-1) : this.need(this.pinned, 'the pinned snapshot');
    const mapped = this.model.mapMemory(this.run, wanted);
    if (!mapped) throw failure('E_QEMU_EXITED', 'QEMU exited: cannot open mem.raw');
    this.mapped = mapped;
    await this.step('QEMU opens the disk overlay');
    const backing = this.model.openBacking(this.run, mapped);
    if (!backing) throw failure('E_QEMU_EXITED', "QEMU exited: cannot open the overlay's backing file snapshots/<key>/disk.qcow2");
    this.backing = backing;
  }

  /** migrateIncoming: state.raw through the pin (or, broken, by path). */
  async incoming(): Promise<void> {
    await this.step('QEMU reads the device state');
    const file = this.model.faults.unpinnedState ? this.model.current : this.pinned;
    if (!this.model.loadState(this.run, file, this.mapped, this.manifestOf)) throw failure('E_QEMU_EXITED', 'QEMU exited: cannot open state.raw');
  }

  /** cont: nothing counted here any more; the guest runs and writes its RAM. */
  async cont(): Promise<void> {
    if (this.mapped) this.model.guestWrites(this.run, this.mapped);
  }

  /** stopQemu with countFailure: one byte appended to the pinned folder's resume-failures (a removed folder: the write fails, ignored). */
  async countFailure(): Promise<void> {
    const pinned = this.need(this.pinned, 'the pinned snapshot');
    await this.step('counts its failed resume');
    if (pinned.gone) return;
    pinned.failures += 1;
    this.model.note(this.run, `counts a failed resume of version ${pinned.id}: ${pinned.failures}`);
  }

  /** handOffHealthy after a resume: the state file written, the pinned folder's resume-failures removed. */
  async handOff(): Promise<void> {
    const pinned = this.need(this.pinned, 'the pinned snapshot');
    await this.step('writes its state file');
    await this.step('clears the resume failures');
    if (pinned.gone) return;
    pinned.failures = 0;
    this.model.note(this.run, `clears the resume failures of version ${pinned.id}`);
  }

  /** The run's cleanup stack at its end, newest first: the pin let go, an unfinished capture dropped, the capture locks let go. */
  async cleanup(): Promise<void> {
    this.closed = true;
    this.model.active.delete(this.run);
    await this.step('runs its cleanup');
    const dir = this.captureDir;
    if (dir) {
      await this.step('drops the unfinished capture (cleanup)');
      this.model.drop(this.run, dir);
    }
    for (const lock of [...this.onCleanup].reverse()) await this.release(lock, 'cleanup');
  }

  /** What the config's snapshot is worth to this host now; changes nothing. */
  private async judge(): Promise<Verdict> {
    // readSnapshot: the manifest of whatever the folder holds.
    await this.step('reads the snapshot');
    const found = this.model.current;
    if (!found) return {};
    if (!found.files.has('manifest')) return { reason: 'manifest.json is missing', found };
    // readResumeFailures: the file of whatever the folder holds by now.
    await this.step('reads its resume failures');
    const failuresInARow = this.model.current?.failures ?? 0;
    if (failuresInARow >= FAILURES_BEFORE_SET_ASIDE) return { reason: `its guest failed after ${failuresInARow} resumes in a row (rotation or health)`, found };
    this.manifestOf = found;
    return { usable: { status: 'usable', failuresInARow }, found };
  }

  /** Judged again now that no capture can publish: usable (the lock let go), or set aside and the lock kept to capture (let go when not capturing). */
  private async underCaptureLock(lock: HeldLock, capture: boolean): Promise<CaptureWait> {
    this.holdCaptureLock(lock);
    const verdict = await this.judge();
    if (verdict.reason !== undefined) {
      await this.step('sets the snapshot aside (choosing)');
      this.model.setAside(this.run, verdict.reason, verdict.found);
    }
    if (verdict.usable || !capture) await this.releaseCaptureLock('choosing');
    return verdict.usable ?? notUsable(verdict.reason);
  }

  /** steps/start.ts holdCaptureLock: run.captureLock, and its release on the cleanup stack (run at once once the stack ran). */
  private holdCaptureLock(lock: HeldLock): void {
    this.captureLock = lock;
    this.onCleanup.push(lock);
    if (this.closed) void this.release(lock, 'cleanup, at once');
  }

  /** steps/capture.ts releaseCaptureLock: run.captureLock forgotten, then let go. */
  private async releaseCaptureLock(why: string): Promise<void> {
    const lock = this.captureLock;
    this.captureLock = undefined;
    if (lock) await this.release(lock, why);
  }

  /** InstanceLock.release: once; the lock file read and removed (an await) while it still holds this run's pid. */
  private async release(lock: HeldLock, why: string): Promise<void> {
    if (lock.released) return;
    lock.released = true;
    await this.step(`lets go of the capture lock (${why})`);
    this.model.release(this.run);
  }

  private async step(what: string): Promise<void> {
    await this.tick(`run ${this.run} ${what}`);
  }

  private need<T>(value: T | undefined, what: string): T {
    if (value === undefined) throw failure('E_STATE', `${what} is not known yet at this point of the start`);
    return value;
  }
}

function notUsable(reason: string | undefined): Exclude<CaptureWait, { status: 'usable' }> {
  return reason === undefined ? { status: 'missing' } : { status: 'setAside', reason };
}
