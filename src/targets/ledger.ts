// Host-side notes of where a batch stages files under temporary names, kept while it
// runs: a container batch's DIR/.stevedore-TAG/ directories, a local batch's
// DIR/.stevedore-TAG-N.tmp files. An agent killed mid-push leaves its notes behind, and
// a container batch that failed while its container did not answer leaves one too: the
// target removes what they name before its next push, so no hidden partial file stays.
// No fsync: a note only has to outlive the agent process, not the machine (after a
// power cut a temp name can stay; it never holds a file under its real name).
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface StagingNote {
  tag: string;
  dirs: string[];
}

export interface StagingLedger {
  /** Reads what an earlier run left; before any push. */
  open(): Promise<void>;
  /** Before a batch makes its staging directories. */
  note(target: string, note: StagingNote): Promise<void>;
  /** Its staging directories are gone. */
  clear(target: string, tag: string): Promise<void>;
  /** Its batch ended without removing them: the target's next push does. */
  leave(target: string, note: StagingNote): void;
  /** Notes whose directories may still be there: an earlier run's, and those left since. */
  leftovers(target: string): StagingNote[];
  /** Targets that have leftovers. */
  targets(): string[];
}

const TAG = /^[\w-]+$/;

export function createStagingLedger(dir: string): StagingLedger {
  const left = new Map<string, Map<string, StagingNote>>();
  const file = (tag: string) => {
    if (!TAG.test(tag)) throw new Error(`not a staging tag: ${JSON.stringify(tag)}`);
    return path.join(dir, `${tag}.json`);
  };
  const leave = (target: string, note: StagingNote) => {
    const notes = left.get(target) ?? new Map<string, StagingNote>();
    left.set(target, notes.set(note.tag, note));
  };
  return {
    async open() {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      for (const name of await readdir(dir)) {
        const tag = name.replace(/\.json$/, '');
        try {
          const { target, dirs } = JSON.parse(await readFile(file(tag), 'utf8')) as { target: string; dirs: string[] };
          leave(target, { tag, dirs });
        } catch {
          // Cut while being written: its batch never started, so it made nothing.
          await rm(path.join(dir, name), { force: true, recursive: true });
        }
      }
    },
    async note(target, note) {
      await writeFile(file(note.tag), JSON.stringify({ target, dirs: note.dirs }), { mode: 0o600 });
    },
    async clear(target, tag) {
      left.get(target)?.delete(tag);
      await rm(file(tag), { force: true });
    },
    leave,
    leftovers: (target) => [...(left.get(target)?.values() ?? [])],
    targets: () => [...left].filter(([, notes]) => notes.size > 0).map(([target]) => target),
  };
}
