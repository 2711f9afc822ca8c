// Host-side notes of where a batch stages files under temporary names, kept while it
// runs: a container batch's DIR/.stevedore-TAG/ directories, a local batch's
// DIR/.stevedore-TAG-N.tmp files. An agent killed mid-push leaves its notes behind, and
// a container batch that failed while its container did not answer leaves one too: the
// target removes what they name before its next push, so no hidden partial file stays.
// No fsync: a note only has to outlive the agent process, not the machine (after a
// power cut a temp name can stay; it never holds a file under its real name).
// A note that cannot be written (state_dir full, no descriptor) does not stop a push:
// it only means a crash now could leave a temp name behind, and that is said once.
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { errorMessage } from '../errors.js';

export interface StagingNote {
  tag: string;
  /** The container (or local root) the directories are in. */
  where: string;
  dirs: string[];
}

export interface StagingLedger {
  /** Reads what an earlier run left; before any push. */
  open(): Promise<void>;
  /** Before a batch stages anything. */
  note(target: string, note: StagingNote): Promise<void>;
  /** Its temp names are gone. */
  clear(target: string, tag: string): Promise<void>;
  /** Its batch ended without removing them: the target's next push does. */
  leave(target: string, note: StagingNote): void;
  /** Notes whose temp names may still be there: an earlier run's, and those left since. */
  leftovers(target: string): StagingNote[];
  /**
   * Before a target's push: each of its leftovers in `where` (its container or root) goes
   * through `remove`, which answers false when it cannot be done now (then the rest waits
   * for the next push). A note for another place is logged for removal by hand. One
   * sweep per target at a time; none at all when there is nothing left.
   */
  sweep(target: string, where: string, remove: (note: StagingNote) => Promise<boolean>): Promise<void>;
  /** Targets that have leftovers. */
  targets(): string[];
}

const TAG = /^[\w-]+$/;

export function createStagingLedger(dir: string, logger?: Logger): StagingLedger {
  const left = new Map<string, Map<string, StagingNote>>();
  const file = (tag: string) => {
    if (!TAG.test(tag)) throw new Error(`not a staging tag: ${JSON.stringify(tag)}`);
    return path.join(dir, `${tag}.json`);
  };
  const leave = (target: string, note: StagingNote) => {
    const notes = left.get(target) ?? new Map<string, StagingNote>();
    left.set(target, notes.set(note.tag, note));
  };
  const sweeping = new Map<string, Promise<void>>();
  async function sweepOnce(target: string, where: string, remove: (note: StagingNote) => Promise<boolean>): Promise<void> {
    for (const note of [...(left.get(target)?.values() ?? [])]) {
      if (note.where !== where) {
        logger?.warn({ target, where: note.where, dirs: note.dirs, tag: note.tag }, 'an interrupted push left temp names (.stevedore-TAG) in a place this target no longer points at: remove them by hand');
      } else if (await remove(note)) {
        logger?.info({ target, where, dirs: note.dirs }, 'removed the temp names an interrupted push left in the target');
      } else return;
      await ledger.clear(target, note.tag);
    }
  }
  let failing = false;
  const tried = async (work: () => Promise<void>) => {
    try {
      await work();
      if (failing) logger?.info({ dir }, 'staging notes are written again');
      failing = false;
    } catch (error) {
      if (!failing) logger?.warn({ dir, err: error }, `cannot write staging notes (${errorMessage(error)}): pushes go on, but a crash now could leave a temp name in a target`);
      failing = true;
    }
  };
  const ledger: StagingLedger = {
    async open() {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      for (const name of await readdir(dir)) {
        const tag = name.replace(/\.json$/, '');
        try {
          const { target, where, dirs } = JSON.parse(await readFile(file(tag), 'utf8')) as { target: string } & Omit<StagingNote, 'tag'>;
          leave(target, { tag, where, dirs });
        } catch {
          // Cut while being written: its batch never started, so it made nothing.
          await rm(path.join(dir, name), { force: true, recursive: true });
        }
      }
    },
    async note(target, { tag, where, dirs }) {
      const noteFile = file(tag);
      await tried(() => writeFile(noteFile, JSON.stringify({ target, where, dirs }), { mode: 0o600 }));
    },
    clear(target, tag) {
      left.get(target)?.delete(tag);
      return tried(() => rm(file(tag), { force: true }));
    },
    leave,
    leftovers: (target) => [...(left.get(target)?.values() ?? [])],
    async sweep(target, where, remove) {
      if (!left.get(target)?.size) return;
      let running = sweeping.get(target);
      if (!running) {
        running = sweepOnce(target, where, remove).finally(() => sweeping.delete(target));
        sweeping.set(target, running);
      }
      await running;
    },
    targets: () => [...left].filter(([, notes]) => notes.size > 0).map(([target]) => target),
  };
  return ledger;
}
