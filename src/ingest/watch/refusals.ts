// Watched paths that may not be read (beneath.ts): each is said once at warn level,
// then at debug until it is staged or goes, so a writer flipping a symlink in a loop
// cannot fill the log. The set is bounded: a writer making millions of such names
// only makes some of them said twice.
import path from 'node:path';
import type { Logger } from 'pino';
import type { StevedoreError } from '../../errors.js';
import type { Refusal } from './beneath.js';

const SAID_MAX = 10_000;

const MESSAGES: Record<Refusal, string> = {
  outside: 'skipping a symlink that leads outside the watched directory',
  symlink: 'skipping a path through a symlink: a drop folder follows none',
  loop: 'skipping a path through too many symlinks',
  special: 'skipping a file that is not a regular file (FIFO, socket or device)',
  encoding: 'skipping a file whose name is not valid UTF-8',
  denied: 'skipping what the agent may not read (permission denied) until it may',
  name: 'skipping a file whose name cannot be a container path',
};

export interface Refusals {
  note(file: string, error: StevedoreError): void;
  forget(file: string): void;
}

export function createRefusals(log: Logger, root: string): Refusals {
  const said = new Set<string>();
  return {
    note(file, error) {
      const { kind, link, at } = error.details as { kind?: Refusal; link?: string; at?: string };
      // Where the link leads, for the operator: relative links from the directory they are in.
      const resolves = link === undefined || at === undefined ? undefined : path.resolve(root, path.dirname(at), link);
      const fields = { path: file, reason: error.message, ...(resolves === undefined ? {} : { resolves }) };
      const message = MESSAGES[kind ?? 'outside'];
      if (said.has(file)) return void log.debug(fields, message);
      if (said.size >= SAID_MAX) said.clear();
      said.add(file);
      log.warn(fields, message);
    },
    forget: (file) => void said.delete(file),
  };
}
