// One watched directory (SPEC §2, §5) on chokidar: files that settle are staged and
// queued through the same intake as HTTP uploads. drop: the host file goes (or moves
// to after_push) once its push succeeded. mirror: the container follows the
// directory, host files are never touched, deletes follow with `delete: true`.
import type { Stats } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { StevedoreError, errorMessage, isStevedoreError } from '../../errors.js';
import type { OutOfFilesAlarm } from '../../open-files.js';
import type { Settlement } from '../../queue/scheduler.js';
import type { FileOptions, Task, TaskOrigin } from '../../task.js';
import type { Intake } from '../intake.js';
import { checkRelativePath, joinDest } from '../paths.js';
import { fdPath, isBlocked, openBeneath, statBeneath, unsafe } from './beneath.js';
import { afterDrop } from './drop.js';
import { watchErrorMessage } from './errors.js';
import { createIgnore } from './filter.js';
import { createMirrorDeletes } from './deletes.js';
import { createMirrorLinks } from './links.js';
import { createMirrorState, type MirrorState } from './mirror-state.js';
import { createRootGuard } from './root.js';
import { createRefusals } from './refusals.js';
import { createSettler } from './settle.js';
import { stageFile, versionOf, type Version } from './stage.js';
import { createStageQueue } from './stage-queue.js';
import { notifyTree } from './notify-tree.js';
import { pollTree } from './poll-tree.js';
import type { TreeWatcher } from './tree.js';
import { createWaiting } from './waiting.js';

export interface WatchConfig {
  name: string;
  path: string;
  target: string;
  dest: string;
  mode: 'drop' | 'mirror';
  ignore: readonly string[];
  settle: number;
  initial: boolean;
  delete: boolean;
  after_push: string | null;
  poll: boolean;
}

export interface WatchOptions {
  config: WatchConfig;
  options: FileOptions;
  intake: Intake;
  /** Where mirror state files live (state_dir/watch). */
  stateDir: string;
  logger: Logger;
  outOfFiles: OutOfFilesAlarm;
}

export type WatchState = 'starting' | 'watching' | 'missing' | 'failed' | 'stopped';

export interface WatchStatus {
  name: string;
  path: string;
  mode: 'drop' | 'mirror';
  state: WatchState;
  since: string;
  /** Files seen and not queued yet: settling, being staged, or waiting for room in the spool. */
  pending: number;
  /** Files and directories it knows under its folder. */
  paths: number;
  error?: string;
}

export interface Watch {
  readonly name: string;
  /** Resolves once the initial scan is done (and drop/mirror start-up work is queued). */
  start(): Promise<void>;
  /** Stops watching and staging; pushes already queued may still settle after it. */
  close(): Promise<void>;
  /** Saves what pushes that settled after close() taught the mirror state: call once the queue has drained. */
  flush(): Promise<void>;
  /** Tasks recovered from the journal: their files are queued already. */
  adopt(origins: readonly TaskOrigin[]): void;
  /** Looks at these files (relative paths) again, as if they had just changed. */
  recheck(paths: readonly string[]): void;
  /** Whether `task` pushes one of this watch's files where this watch puts them (a reload may have moved them). */
  owns(task: Task): boolean;
  /** A push of one of this watch's files is over. */
  settled(task: Task, how: Settlement): Promise<void>;
  status(): WatchStatus;
}

const BLOCKED = 'a directory on the way is a symlink for now: looking again after settle';
const STORM = 'events in a watched directory come faster than 50,000 a second: its watch pauses for 0.5 s at a time, and it is rescanned';
const ROOT_CHECK = 1000;
const STAGING = 16;
// Files a watch keeps queued and not yet pushed: a tree's first push stages its files as
// the pushes make room, instead of all at once into the spool and the queue (a 100,000-
// file mirror's tasks took the agent to 583 MB). Enough for a few batches ahead.
const STAGED_AHEAD = 2000;

export function createWatch({ config, options, intake, stateDir, logger, outOfFiles }: WatchOptions): Watch {
  const log = logger.child({ watch: config.name });
  const root = path.resolve(config.path);
  const mirror: MirrorState | undefined = config.mode === 'mirror' ? createMirrorState(path.join(stateDir, `${config.name}.json`), { target: config.target, dest: config.dest }, log) : undefined;
  const queued = new Map<string, { size: number; mtimeMs: number }>();
  // One file's versions are staged one after another: with several files staged at
  // once, a slow older version could otherwise be queued after a newer one and win.
  const stager = createStageQueue({
    concurrency: STAGING,
    stage: stageOne,
    room: () => queued.size < STAGED_AHEAD,
    failed: (file, error) => log.error({ path: file, err: error }, 'staging a watched file failed'),
  });
  const guard = createRootGuard(root);
  // A mirror follows symlinks that stay inside its folder; a drop folder follows none.
  const walk = { follow: config.mode === 'mirror' };
  const refusals = createRefusals(log, root);
  const statOf = (file: string) =>
    guard.use<Stats | 'blocked' | undefined>((held) => statBeneath(held, relOf(file), walk)).catch((error: unknown) => {
      if (!isStevedoreError(error, 'SOURCE_UNSAFE')) return undefined;
      if (!isBlocked(error)) return void refusals.note(file, error);
      log.debug({ path: file, reason: error.message }, BLOCKED);
      return 'blocked';
    });
  const settler = createSettler(config.settle, statOf, (file, stats) => stager.push(file, versionOf(stats)));
  const waiting = createWaiting({ log, touch: (file) => settler.touch(file), wake: STAGING });
  const deletes = createMirrorDeletes({
    watch: config.name,
    settleMs: config.settle,
    guard,
    walk,
    intake,
    log,
    accepted: (rel, origin) => {
      const dest = destFor(rel);
      return dest === undefined ? undefined : accepted(dest, origin);
    },
    // Whatever version was known is gone: the same file put back must be pushed again.
    queued: (rel) => queued.set(rel, { size: -1, mtimeMs: -1 }),
  });
  // Where a mirror's link leads now (never outside: the walk refuses that).
  const links = createMirrorLinks((file) =>
    guard.use((held) =>
      openBeneath(held, relOf(file), 'file', walk).then(async (handle) => {
        try {
          return path.relative(held.paths.at(-1) as string, await realpath(fdPath(handle.fd))).split(path.sep).join('/');
        } finally {
          await handle.close();
        }
      }),
    ),
  );
  let watcher: TreeWatcher | undefined;
  let rootTimer: NodeJS.Timeout | undefined;
  let current: Pick<WatchStatus, 'state' | 'since' | 'error'> = { state: 'starting', since: new Date().toISOString() };
  let closed = false;

  const relOf = (file: string) => path.relative(root, file).split(path.sep).join('/');
  const setState = (state: WatchState, error?: string) => {
    if (current.state !== state || current.error !== error) current = { state, since: new Date().toISOString(), ...(error ? { error } : {}) };
  };
  async function stageOne(file: string, stats: Version): Promise<void> {
    if (closed) return;
    const rel = relOf(file);
    const known = queued.get(rel) ?? mirror?.get(rel);
    if (known && known.size === stats.size && known.mtimeMs === stats.mtimeMs) return;
    if (deletes.blocks(rel)) return waiting.later(file);
    const dest = destFor(rel);
    if (dest === undefined) return;
    const origin = { watch: config.name, path: rel, size: stats.size, mtimeMs: stats.mtimeMs, dev: stats.dev, ino: stats.ino };
    const noRoomFor = (error: StevedoreError) => waiting.noRoom(file, error);
    const open = () => guard.use((held) => openBeneath(held, rel, 'file', walk));
    const refused = (error: StevedoreError) => refusals.note(file, error);
    const outcome = await stageFile({ file, rel, stats, open, intake, log, accepted: accepted(dest, origin), noRoom: noRoomFor, refused, outOfFiles });
    if (outcome === 'queued') refusals.forget(file);
    if (outcome !== 'later' && outcome !== 'full') waiting.forget(file);
    if (outcome !== 'full') waiting.hadRoom(file, outcome === 'queued');
    if (outcome === 'queued') queued.set(rel, origin);
    else if (outcome === 'later' || outcome === 'full' || outcome === 'changed') waiting.later(file);
    else if (outcome === 'blocked') {
      log.debug({ path: file }, BLOCKED);
      settler.touch(file);
    }
  }

  const accepted = (dest: string, origin: TaskOrigin) => ({ source: 'watch' as const, route: config.name, target: config.target, dest, options, origin });

  function owns(task: Task): boolean {
    return task.origin?.watch === config.name && task.target === config.target && task.dest === destFor(task.origin.path);
  }

  function destFor(rel: string): string | undefined {
    try {
      return joinDest(config.dest, checkRelativePath(rel));
    } catch (error) {
      // Said once, not for each version the writer saves.
      refusals.note(path.join(root, rel), new StevedoreError('SOURCE_UNSAFE', `${rel}: ${errorMessage(error)}`, { details: { path: rel, kind: 'name' } }));
      return undefined;
    }
  }

  function onFile(file: string, stats?: Stats, scan?: Set<string>): void {
    const rel = relOf(file);
    scan?.add(rel);
    if (stats?.isSymbolicLink()) {
      // drop: removing a pushed link would leave its target behind, pushed twice.
      if (config.mode === 'drop') return void log.debug({ path: relOf(file) }, 'skipping a symlink in a drop folder');
      // mirror: its own stats say nothing of its target; let the settler stat through it.
      links.seen(file);
      return settler.touch(file);
    }
    for (const link of links.to(rel)) settler.touch(link);
    if (stats && !stats.isFile()) return void refusals.note(file, unsafe(rel, 'special'));
    // A mirror's restart meets mostly files pushed before: no settling for those.
    const known = queued.has(rel) ? undefined : mirror?.get(rel);
    if (known && stats && known.size === stats.size && known.mtimeMs === stats.mtimeMs) return;
    settler.touch(file, stats);
  }

  function onUnlink(file: string, dir: boolean): void {
    links.forget(file);
    settler.forget(file);
    waiting.forget(file);
    refusals.forget(file);
    waiting.hadRoom(file, false);
    if (file === root) return void goneMissing();
    if (config.mode === 'mirror' && config.delete) deletes.gone(relOf(file), dir);
  }

  // `initial` applies to the agent's start; a directory that came back is new, and
  // everything in it is pushed whatever `initial` says.
  async function startWatcher(initial: boolean): Promise<void> {
    await guard.pin();
    const scan = mirror && initial ? new Set<string>() : undefined;
    const w = (config.poll ? pollTree : notifyTree)(root, { ignored: createIgnore(root, config.ignore), initial, use: guard.use, settling: (file) => settler.has(file) }, {
      add: (file, stats) => onFile(file, stats, scan),
      change: (file, stats) => onFile(file, stats),
      unlink: (file) => onUnlink(file, false),
      unlinkDir: (dir) => onUnlink(dir, true),
      error: failed,
      storm: stormIn,
      unreadable: (file) => refusals.note(file, unsafe(relOf(file), 'encoding')),
      denied: (dir) => refusals.note(dir, unsafe(relOf(dir), 'denied')),
    });
    watcher = w;
    // Staging waits for the scan: a big tree is listed first, so "watching" (and
    // /readyz) come as soon as it is, and its pushes follow. The deletes of what went
    // meanwhile go first: a file where a directory was (or the other way round) must
    // not meet the old one in the container.
    stager.pause();
    try {
      await w.ready;
      if (scan) await reconcileDeletes(scan);
    } finally {
      stager.resume();
    }
    if (current.state !== 'failed') setState('watching');
  }

  // Files the last run pushed that are gone now: deleted while the agent was away.
  async function reconcileDeletes(scan: Set<string>): Promise<void> {
    if (!mirror || !config.delete) return;
    await deletes.reconcile([...mirror.paths()].filter((rel) => !scan.has(rel)));
  }

  // Said at most once a minute: the storm is the writer's doing, and it goes on.
  let stormSaid = -Infinity;
  function stormIn(dir: string): void {
    const fields = { dir: relOf(dir) || '.' };
    if (Date.now() - stormSaid < 60_000) return void log.debug(fields, STORM);
    stormSaid = Date.now();
    log.warn(fields, `${STORM} (said at most once a minute)`);
  }

  function failed(error: Error): void {
    const message = watchErrorMessage(error, config);
    if (current.error !== message) log.error({ err: error }, message);
    setState('failed', message);
  }

  // The directory went away: stop watching it, say so in /readyz, and look for it
  // again every second.
  function goneMissing(): void {
    if (current.state === 'missing' || closed) return;
    log.warn({ path: root }, 'the watched directory disappeared; waiting for it to come back');
    setState('missing');
    guard.release();
    settler.close();
    void watcher?.close();
    watcher = undefined;
  }

  async function checkRoot(): Promise<void> {
    const now = await guard.check();
    // Gone, or replaced between two looks: the old directory, which the watcher still
    // holds, will never see a write again.
    if (now !== 'same' && (now !== 'replaced' || current.state !== 'starting')) goneMissing();
    if (now === 'elsewhere') return elsewhere();
    if (now === 'gone' || current.state !== 'missing' || closed) return;
    log.info({ path: root }, 'the watched directory is back');
    elsewhereSaid = false;
    setState('starting');
    await startWatcher(true).catch((error: unknown) => {
      // Swapped for a link elsewhere between the check and the open.
      if (isStevedoreError(error, 'SOURCE_UNSAFE')) return setState('missing');
      failed(error as Error);
    });
  }

  // The path leads to another directory than the folder (a symlink swapped in): not
  // followed, said once; the watch stays missing until the folder is back where it was.
  let elsewhereSaid = false;
  function elsewhere(): void {
    if (elsewhereSaid || closed) return;
    elsewhereSaid = true;
    log.warn({ path: root }, 'the watched path leads to another directory now (a symlink?): not followed; it is watched again once the directory is back where it was, or after a restart');
  }

  return {
    name: config.name,
    async start() {
      const present = await stat(root).then((s) => s.isDirectory(), () => false);
      if (!present) throw new StevedoreError('CONFIG_INVALID', `watch "${config.name}": ${root} is not an existing directory`);
      await mirror?.load();
      await startWatcher(config.initial);
      rootTimer = setInterval(() => void checkRoot(), ROOT_CHECK).unref();
      log.info({ path: root, mode: config.mode, pending: settler.pending }, 'watching');
    },
    async close() {
      closed = true;
      clearInterval(rootTimer);
      waiting.close();
      deletes.close();
      guard.release();
      settler.close();
      await watcher?.close();
      await stager.close();
      await mirror?.close();
      setState('stopped');
    },
    async flush() {
      // Without this, a push that finished during shutdown would be saved by a stray
      // timer after the agent stopped, or not at all, and pushed again on the next start.
      await mirror?.close();
    },
    recheck(paths) {
      for (const rel of paths) settler.touch(path.join(root, rel));
    },
    adopt(origins) {
      for (const origin of origins) queued.set(origin.path, { size: origin.size, mtimeMs: origin.mtimeMs });
    },
    owns,
    async settled(task, how) {
      const origin = task.origin;
      if (!origin) return;
      const version = queued.get(origin.path);
      if (version?.size === origin.size && version.mtimeMs === origin.mtimeMs) {
        queued.delete(origin.path);
        stager.wake();
      }
      if (task.kind === 'delete') deletes.over(origin.path);
      if (how !== 'done') return;
      // A push to where this watch no longer puts its files (journaled before a restart
      // that changed its dest or target) tells its mirror state nothing.
      if (mirror && !owns(task)) return;
      if (task.kind === 'delete') {
        mirror?.remove(origin.path);
        if (origin.dir) mirror?.removeTree(origin.path);
      } else if (mirror) {
        mirror.set(origin.path, { size: origin.size, mtimeMs: origin.mtimeMs, sha256: task.sha256 });
      } else {
        // Refused for now (a directory on its way swapped for a symlink): staged and
        // pushed again later, then removed, as the tree still knows the file.
        const outcome = await afterDrop({ guard, afterPush: config.after_push, origin, log });
        if (outcome === 'unsafe' && !closed) waiting.later(path.join(root, origin.path));
      }
    },
    status: () => ({ name: config.name, path: root, mode: config.mode, ...current, pending: settler.pending + stager.size + waiting.resting, paths: watcher?.count() ?? 0 }),
  };
}
