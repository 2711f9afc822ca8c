// state_dir under a running agent can go away (removed, renamed, unmounted) or stop
// taking writes (remounted read-only, chmod, chattr +i). Meanwhile uploads get 503
// SPOOL_UNAVAILABLE, watched files wait in their folders, finished pushes wait to be
// recorded, and /readyz names the path; said once when it starts, once when it ends.
// The agent recovers in place and does not exit: it is the only one left that knows the
// tasks it accepted. It never makes state_dir itself again (a mount point that went
// away would be filled underneath, and hidden when the mount comes back): once state_dir
// is there and writable, it remakes its own directories in it and, if the journal went
// with it, writes the live tasks there again.
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import { StevedoreError, errnoCode, errorMessage } from '../errors.js';
import { makeDir } from '../durable.js';
import type { Journal } from './journal.js';

export interface StateDir {
  /** Throws SPOOL_UNAVAILABLE while state_dir cannot take files (looked at anew every 100 ms). */
  check(): Promise<void>;
  /** What is wrong with it now, for /readyz; undefined when nothing is. */
  problem(): Promise<string | undefined>;
  /** `error` as it came, or SPOOL_UNAVAILABLE (caused by it) when state_dir turns out to be what failed. */
  explain(error: unknown): Promise<unknown>;
  /** Stops looking again every second (the agent stops). */
  close(): void;
}

export interface StateDirOptions {
  dir: string;
  /** The agent's directories in it (spool, dead-letter, staging notes): made again when missing. */
  subdirs: readonly string[];
  journal: Pick<Journal, 'restore'>;
  logger: Logger;
  /** While it is unusable, how often it is looked at without being asked. */
  retryMs?: number;
}

const CACHE_MS = 100;
// A failure this soon after state_dir came back may have met the outage and been
// looked at only after it ended: it is the outage's, not an internal error.
const JUST_BACK_MS = 2000;

export function createStateDir({ dir, subdirs, journal, logger, retryMs = 1000 }: StateDirOptions): StateDir {
  let cached = { at: 0, problem: Promise.resolve<string | undefined>(undefined) };
  let looking: Promise<string | undefined> | undefined;
  let down: string | undefined;
  let backAt = -Infinity;
  let timer: NodeJS.Timeout | undefined;

  // The problem said when it started, kept while it lasts; looked at again every second.
  const fall = (problem: string) => {
    down = problem;
    logger.error({ dir }, `${problem}: uploads get 503 SPOOL_UNAVAILABLE, watched files wait in their folders and finished pushes wait to be recorded until it can be written again (the agent does not make state_dir itself)`);
    timer = setInterval(() => void lookNow(), retryMs).unref();
  };
  // Usable again: the journal written at its path again if it went, then said once.
  // A directory of the agent's made again means files were just lost with it: that
  // look answers its problem, so the upload that found it gone gets a 503.
  const recover = async (remade: string[]): Promise<string | undefined> => {
    try {
      await journal.restore();
    } catch (error) {
      const problem = `the journal cannot be written in state_dir ${dir} (${errnoCode(error) ?? errorMessage(error)})`;
      if (down === undefined) fall(problem);
      return problem;
    }
    if (down !== undefined) logger.info({ dir, was: down, remade }, `state_dir ${dir} can be written again: uploads are taken, and waiting files and task ends go on`);
    else logger.warn({ dirs: remade }, `made ${remade.join(', ')} again: gone from state_dir ${dir}, with what was in it`);
    down = undefined;
    backAt = Date.now();
    clearInterval(timer);
    return remade.length === 0 ? undefined : `${remade.join(', ')} was gone from state_dir (made again)`;
  };
  const look = async (): Promise<string | undefined> => {
    const { problem, remade } = await findProblem(dir, subdirs);
    if (problem === undefined) return down === undefined && remade.length === 0 ? undefined : recover(remade);
    if (down === undefined) fall(problem);
    return problem;
  };
  // Looks one at a time: many uploads failing together share one look.
  const lookNow = () => {
    looking ??= look().finally(() => (looking = undefined));
    cached = { at: Date.now(), problem: looking };
    return looking;
  };
  const current = () => (Date.now() - cached.at > CACHE_MS ? lookNow() : cached.problem);

  return {
    async check() {
      const problem = await current();
      if (problem !== undefined) throw unavailable(problem);
    },
    problem: lookNow,
    async explain(error) {
      if (error instanceof StevedoreError) return error;
      const problem = (await lookNow()) ?? (Date.now() - backAt < JUST_BACK_MS ? `state_dir ${dir} was just back` : undefined);
      return problem === undefined ? error : unavailable(problem, error);
    },
    close: () => clearInterval(timer),
  };
}

// Answered to clients without the host path (/readyz and the log name it).
const unavailable = (problem: string, cause?: unknown) =>
  new StevedoreError('SPOOL_UNAVAILABLE', 'the spool cannot take files now: state_dir is gone or cannot be written; retry later', { cause, details: { problem } });

// stat and access, and a mkdir for each of the agent's directories (`remade`: those that
// were missing): a few system calls, at most every 100 ms however many uploads ask.
async function findProblem(dir: string, subdirs: readonly string[]): Promise<{ problem?: string; remade: string[] }> {
  const remade: string[] = [];
  try {
    if (!(await stat(dir)).isDirectory()) return { problem: `state_dir ${dir} is not a directory`, remade };
    await access(dir, constants.W_OK);
  } catch (error) {
    return { problem: `state_dir ${dir} ${errnoCode(error) === 'ENOENT' ? 'is gone' : 'cannot be written'} (${errnoCode(error) ?? errorMessage(error)})`, remade };
  }
  for (const sub of subdirs) {
    try {
      if (await makeDir(sub)) remade.push(sub);
      await access(sub, constants.W_OK);
    } catch (error) {
      return { problem: `${sub} in state_dir cannot be written (${errnoCode(error) ?? errorMessage(error)})`, remade };
    }
  }
  return { remade };
}
