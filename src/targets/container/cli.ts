// Runs a runtime's CLI: always an argument array, never a shell. A push that outlives
// its signal (timeout or shutdown) is killed, SIGKILL following SIGTERM if need be.
import type { ChildProcess } from 'node:child_process';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { StevedoreError, errorMessage } from '../../errors.js';
import { classify, type FailureRule } from './classify.js';

export interface Cli {
  /** The runtime's name, for messages. */
  runtime: string;
  command: string;
  failures: readonly FailureRule[];
}

export interface RunOptions {
  signal: AbortSignal;
  /** Piped to the CLI's stdin (a tar stream); stdin is empty without it. */
  input?: Readable;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

const KILL_AFTER_MS = 2_000;

/** Resolves with the output of a zero exit; throws the classified error otherwise. */
export async function run(cli: Cli, args: readonly string[], { signal, input }: RunOptions): Promise<RunResult> {
  const feeding = new AbortController();
  const { child } = await start(cli, args, AbortSignal.any([signal, feeding.signal]), input !== undefined).catch((error: unknown) => {
    input?.destroy();
    throw error;
  });
  let inputError: unknown;
  if (input && child.stdin) {
    // A CLI that exits early (container stopped) closes its stdin: EPIPE is its exit
    // code's story, not ours. A staged file that cannot be read is ours: stop the CLI.
    child.stdin.on('error', () => undefined);
    pipeline(input, child.stdin).catch((error: unknown) => {
      if (input.errored) {
        inputError = error;
        feeding.abort(error);
      }
    });
  }
  const result = await child;
  // Out of descriptors (to spawn the CLI or read the file) stays in `cause`: pushError
  // (target.ts) makes it TOO_MANY_OPEN_FILES.
  if (inputError !== undefined) {
    throw new StevedoreError('TARGET_IO', `could not read a staged file: ${errorMessage(inputError)}`, { cause: inputError });
  }
  return ended(cli, signal, result);
}

/** A call that waits halfway: once its output has a line `ready`, `answer` is asked with what came before it. */
export interface Turn {
  ready: string;
  /** Answers the line written to the CLI's stdin, which then ends; one that throws ends stdin with nothing. */
  answer(before: string): Promise<string>;
}

/**
 * `run` for a CLI that stops halfway for an answer on its stdin (batch.sh's copy mode,
 * while the runtime's copy runs): one process where two would cost a second exec. The
 * answer's error wins over the call's, which then only says the same thing later.
 */
export async function converse(cli: Cli, args: readonly string[], signal: AbortSignal, turn: Turn): Promise<RunResult> {
  const { child } = await start(cli, args, signal, true);
  child.stdin?.on('error', () => undefined);
  let seen = '';
  let answering: Promise<unknown> | undefined;
  let answerError: unknown;
  const onData = (chunk: Buffer) => {
    seen += chunk.toString();
    const at = `\n${seen}`.indexOf(`\n${turn.ready}\n`);
    if (at < 0) return;
    child.stdout?.off('data', onData);
    answering = turn.answer(seen.slice(0, at)).then((line) => child.stdin?.end(`${line}\n`), (error: unknown) => {
      answerError = error;
      child.stdin?.end();
    });
  };
  child.stdout?.on('data', onData);
  const result = await child;
  await answering;
  if (answerError !== undefined) throw answerError;
  return ended(cli, signal, result);
}

async function start(cli: Cli, args: readonly string[], signal: AbortSignal, stdin: boolean) {
  const options = {
    cancelSignal: signal,
    forceKillAfterDelay: KILL_AFTER_MS,
    stdin: stdin ? 'pipe' : 'ignore',
    reject: false,
    maxBuffer: 16 * 1024 * 1024,
  } as const;
  return loadExeca().then((execa) => spawned(() => execa(cli.command, args, options))).catch((error: unknown) => {
    throw new StevedoreError('TARGET_IO', `could not start ${cli.command}: ${errorMessage(error)}`, { cause: error });
  });
}

function ended(cli: Cli, signal: AbortSignal, result: CallEnd & { isCanceled: boolean; stdout?: unknown; stderr?: unknown }): RunResult {
  if (result.isCanceled) throw cancelled(cli, signal);
  const failure = callFailure(cli, result);
  if (failure) throw failure;
  return { stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? ''), exitCode: 0 };
}

/**
 * execa, loaded by the first call: it and its dependencies keep ~5 MB resident, and an
 * agent whose targets are all local never runs a CLI.
 */
export async function loadExeca(): Promise<typeof import('execa').execa> {
  return (await import('execa')).execa;
}

/** What ended a call: the fields of execa's result that say it. */
export interface CallEnd {
  failed: boolean;
  exitCode?: number | undefined;
  message?: string | undefined;
  stderr?: unknown;
}

/** Why a finished call failed, classified by the CLI's failure table; undefined for a zero exit. */
export function callFailure(cli: Cli, result: CallEnd): StevedoreError | undefined {
  if (result.failed && result.exitCode === undefined) {
    const missing = (result as { code?: string }).code === 'ENOENT';
    const message = missing ? `${cli.command}: command not found (is ${cli.runtime} installed?)` : (result.message ?? 'could not start it');
    return new StevedoreError(missing ? 'TARGET_DOWN' : 'TARGET_IO', message, { cause: result });
  }
  if (result.exitCode === 0) return undefined;
  return classify(cli.failures, { command: cli.command, ...(result.exitCode === undefined ? {} : { exitCode: result.exitCode }), stderr: String(result.stderr ?? '') });
}

// Out of descriptors, node's spawn answers a child without stdio and emits EMFILE on it
// a tick later; execa 9 then throws "subprocess.stdio is not iterable", and that
// 'error' has no listener left: the agent would die of it. The child is caught as node
// makes it (the `child_process` diagnostics channel, synchronous), and its own error
// is what this rejects with. Every execa call of a long-running agent goes through it.
export async function spawned<T>(start: () => T): Promise<{ child: T }> {
  let made: ChildProcess | undefined;
  const onChild = (message: unknown) => void (made = (message as { process: ChildProcess }).process);
  subscribe('child_process', onChild);
  try {
    return { child: start() };
  } catch (error) {
    const child = made;
    if (child === undefined || (child as { stdio?: unknown }).stdio !== undefined) throw error;
    throw await new Promise((resolve) => child.once('error', resolve));
  } finally {
    unsubscribe('child_process', onChild);
  }
}

function cancelled(cli: Cli, signal: AbortSignal): StevedoreError {
  const reason: unknown = signal.reason;
  if (reason instanceof StevedoreError) return reason;
  return new StevedoreError('PUSH_TIMEOUT', `${cli.command} did not finish within the push timeout and was killed`);
}
