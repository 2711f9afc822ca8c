// Running out of file descriptors (EMFILE: this process's RLIMIT_NOFILE; ENFILE: the
// system's table): which limit, its value, and how to raise it, said once a minute at
// most, however many calls fail meanwhile.
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { StevedoreError, errnoCode } from './errors.js';

const OUT_OF_FILES = new Set(['EMFILE', 'ENFILE', 'TOO_MANY_OPEN_FILES']);

/**
 * EMFILE, ENFILE (or our TOO_MANY_OPEN_FILES) in `error` or anywhere down its causes:
 * a wrapped failure (a push's TARGET_IO, a CLI that could not be spawned) still says
 * that the host ran out of descriptors.
 */
export const isOutOfFiles = (error: unknown): boolean => {
  for (let link = error, depth = 0; link !== undefined && link !== null && depth < 8; depth += 1) {
    if (OUT_OF_FILES.has(errnoCode(link) ?? '')) return true;
    link = (link as { cause?: unknown }).cause;
  }
  return false;
};

const readOr = (file: string, pick: (text: string) => string | undefined): string => {
  try {
    return pick(readFileSync(file, 'utf8')) ?? 'unknown';
  } catch {
    return 'unknown';
  }
};

/** The soft RLIMIT_NOFILE of this process (Linux), or undefined. */
export function openFilesLimit(): number | undefined {
  const value = Number(readOr('/proc/self/limits', (text) => /^Max open files\s+(\d+)/m.exec(text)?.[1]));
  return Number.isSafeInteger(value) && value > 0 ? value : undefined;
}

// The listener leaves this many descriptors to the agent's own files (staged uploads,
// journal, watches, pushes): connections never take them all, so a connection that
// was accepted can always be answered, with 503 if its upload finds no descriptor.
const OWN_FILES = 64;
const MIN_CONNECTIONS = 16;

/** How many connections the listener takes at once with `limit` descriptors. */
export const connectionCap = (limit: number): number => Math.max(MIN_CONNECTIONS, limit - OWN_FILES);

/** The limits an out-of-descriptors message names. */
export interface FileLimits {
  /** This process's RLIMIT_NOFILE. */
  process?: number | undefined;
  /** The system's fs.file-max. */
  system: string;
}

// Read while there are descriptors to read them with: once they have run out, reading
// /proc/self/limits fails like everything else.
export const readFileLimits = (): FileLimits => ({ process: openFilesLimit(), system: readOr('/proc/sys/fs/file-max', (text) => text.trim()) });

/** What to tell an operator: the limit that was reached, its value, how to raise it. */
export function outOfFilesMessage(code: string | undefined, limits: FileLimits = readFileLimits()): string {
  if (code === 'ENFILE') {
    return `the system's open-files table is full (ENFILE, fs.file-max = ${limits.system}); raise it with "sysctl -w fs.file-max=…" (persist it in /etc/sysctl.d/)`;
  }
  return `out of file descriptors: this agent's limit is ${limits.process ?? 'unknown'} open files (RLIMIT_NOFILE); raise it with LimitNOFILE= in the service unit, or ulimit -n before starting it`;
}

/** The answer a client gets meanwhile (503, Retry-After): the limit is the operator's business. */
export const outOfFiles = (cause: unknown): StevedoreError =>
  new StevedoreError('TOO_MANY_OPEN_FILES', 'the agent is out of file descriptors for now; retry later', { cause });

export interface OutOfFilesAlarm {
  /**
   * Something failed for want of a descriptor (an errno error, TOO_MANY_OPEN_FILES, or
   * undefined for a connection refused at the listener's cap): logged with `context`
   * unless it was in the last minute.
   */
  note(error: unknown, context?: Record<string, unknown>): void;
}

const QUIET = 60_000;

export function createOutOfFilesAlarm(logger: Logger, quietMs = QUIET): OutOfFilesAlarm {
  const limits = readFileLimits();
  let last = -Infinity;
  let since = 0;
  return {
    note(error, context = {}) {
      since += 1;
      if (Date.now() - last < quietMs) return;
      const cause = error instanceof StevedoreError ? error.cause : error;
      const code = errnoCode(cause);
      logger.error({ ...context, ...(code ? { code } : {}), failures: since }, outOfFilesMessage(code, limits));
      last = Date.now();
      since = 0;
    },
  };
}
