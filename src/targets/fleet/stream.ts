// One run of a runtime's event stream: a long-running CLI call (`docker events`, `incus
// monitor`) whose lines are handed over as they come, until it ends (the daemon stopped,
// restarted, or cannot be reached) or the signal stops it.
import { createInterface } from 'node:readline';
import { StevedoreError, errorMessage } from '../../errors.js';
import { callFailure, loadExeca, spawned, type Cli } from '../container/cli.js';

const KILL_AFTER_MS = 2_000;
// What a stream prints on stderr is a line or two, said when it ends.
const MAX_STDERR = 1024 * 1024;

export interface StreamOptions {
  signal: AbortSignal;
  onLine(line: string): void;
}

/** Runs the call to its end; answers why it ended (never rejects). */
export async function runStream(cli: Cli, args: readonly string[], { signal, onLine }: StreamOptions): Promise<StevedoreError> {
  const options = {
    cancelSignal: signal,
    forceKillAfterDelay: KILL_AFTER_MS,
    stdin: 'ignore',
    buffer: { stdout: false, stderr: true },
    maxBuffer: { stderr: MAX_STDERR },
    reject: false,
  } as const;
  let started;
  try {
    const execa = await loadExeca();
    started = await spawned(() => execa(cli.command, args, options));
  } catch (error) {
    return new StevedoreError('TARGET_IO', `could not start ${cli.command}: ${errorMessage(error)}`, { cause: error });
  }
  const { child } = started;
  createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', onLine);
  const result = await child;
  if (result.isCanceled) return new StevedoreError('SHUTTING_DOWN', `${cli.command} ${args.join(' ')}: stopped`);
  return callFailure(cli, result) ?? new StevedoreError('TARGET_DOWN', `${cli.command} ${args.join(' ')}: the event stream ended`);
}
