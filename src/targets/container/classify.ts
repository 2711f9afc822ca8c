// The frame every runtime's failure table plugs into: the first rule whose pattern
// matches the CLI's stderr decides the error code, and the code decides whether the
// scheduler retries, waits for the target, or dead-letters (targets/target.ts).
import { StevedoreError, type ErrorCode } from '../../errors.js';

export interface FailureRule {
  /** Matched against the CLI's stderr. */
  match: RegExp;
  /** When set, the rule holds only for this exit code. */
  exitCode?: number;
  code: ErrorCode;
  /** What an operator reads in the log and the task's error, before the CLI's own words. */
  says: string;
}

export interface CliFailure {
  command: string;
  exitCode?: number;
  stderr: string;
}

export function classify(rules: readonly FailureRule[], failure: CliFailure, details: Record<string, unknown> = {}): StevedoreError {
  const stderr = lastLines(failure.stderr);
  const rule = rules.find((r) => r.match.test(failure.stderr) && (r.exitCode === undefined || r.exitCode === failure.exitCode));
  const code = rule?.code ?? 'TARGET_IO';
  const says = rule?.says ?? `${failure.command} failed${failure.exitCode === undefined ? '' : ` with exit code ${failure.exitCode}`}`;
  return new StevedoreError(code, stderr ? `${says}: ${stderr}` : says, { details: { ...details, exitCode: failure.exitCode } });
}

/** What a file operation inside the container said about one file (mkdir, mv, tar, chown). */
export const fileRules: readonly FailureRule[] = [
  { match: /Permission denied|Operation not permitted|Read-only file system/i, code: 'PERMISSION_DENIED', says: 'permission denied in the container' },
  { match: /Not a directory|File exists/i, code: 'DEST_UNSAFE', says: 'a part of the destination path is not a directory' },
  { match: /Is a directory|cannot overwrite directory/i, code: 'DEST_IS_DIR', says: 'the destination is a directory' },
  { match: /No space left|Disk quota/i, code: 'TARGET_FULL', says: 'the container is out of space' },
  // ENAMETOOLONG: a path past PATH_MAX, or a name past the filesystem's NAME_MAX.
  { match: /File name too long|name too long/i, code: 'DEST_TOO_LONG', says: 'the destination is too long for the container' },
];

const lastLines = (text: string) => text.trim().split('\n').slice(-3).join(' ').slice(0, 500);
