// `stevedore push LOCAL_FILE TARGET:/ABS/PATH`: one file, now, through the same target
// code, file options and retry rules as the agent, with no agent, spool or journal.
import { constants } from 'node:fs';
import { access, copyFile, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig, type Config } from '../config/load.js';
import { fileOptionsFor } from '../config/resolve.js';
import { StevedoreError, errorMessage, isStevedoreError } from '../errors.js';
import { checkAbsolutePath } from '../ingest/paths.js';
import { backoffDelay } from '../queue/backoff.js';
import { newTaskId, type FileOptions } from '../task.js';
import { createTarget } from '../targets/index.js';
import { failureKind, pushItems, type PushResult, type PutItem, type Target } from '../targets/target.js';
import { EXIT } from './exit.js';
import { startProgress, type Progress } from './progress.js';
import { withDeadline } from '../deadline.js';

export const PUSH_USAGE = 'stevedore push [-c FILE] LOCAL_FILE TARGET:/ABS/PATH';

// Smaller files are done before a bar would tell anything.
const PROGRESS_FROM = 8 * 1024 * 1024;

interface Request {
  config: Config;
  local: string;
  target: string;
  targetConfig: Config['targets'][string];
  dest: string;
}

export async function push(operands: readonly string[], configFile: string): Promise<number> {
  let request: Request;
  try {
    request = await prepare(operands, configFile);
  } catch (error) {
    // Config errors go on to the CLI's own handler (FILE:LINE:COL lines).
    if (!isStevedoreError(error, 'USAGE')) throw error;
    process.stderr.write(`stevedore: push: ${error.message}\n`);
    return EXIT.badConfig;
  }
  const { config, local, target, targetConfig, dest } = request;
  const startedAt = performance.now();
  // The target must never get the user's own file: the local target chmods, chowns and
  // hard-links its source, and a file that changes while it streams would not match its
  // tar header. It gets a snapshot in a private (0700) directory under $TMPDIR (set
  // TMPDIR to a disk for files larger than a tmpfs /tmp can hold).
  const dir = await mkdtemp(path.join(tmpdir(), 'stevedore-push-'));
  const interrupt = new AbortController();
  // `on`, not `once`: execa (signal-exit) re-raises a signal that finds no other listener,
  // which would kill us mid-clean-up. Clean-up is bounded (a container's staging removal
  // has 10 s), so a second Ctrl-C need not cut it short.
  const stop = (signal: NodeJS.Signals) => interrupt.abort(signal);
  process.on('SIGINT', stop).on('SIGTERM', stop);
  let progress: Progress | undefined;
  try {
    const source = path.join(dir, 'file');
    await copyFile(local, source);
    const { size } = await stat(source);
    const options = fileOptionsFor(config.defaults);
    // The snapshot is not flushed: a local target that links it flushes it first.
    const item: PutItem = { op: 'put', id: newTaskId(), source, dest, bytes: size, mode: options.mode, dirMode: options.dirMode, owner: options.owner, unflushed: true };
    const adapter = createTarget(target, targetConfig);
    if (process.stderr.isTTY && size > PROGRESS_FROM) {
      progress = startProgress(process.stderr, size);
      item.onProgress = progress.update;
    }
    const attempts = await pushWithRetries(adapter, item, options, interrupt.signal, progress);
    progress?.done();
    const seconds = ((performance.now() - startedAt) / 1000).toFixed(2);
    process.stdout.write(`pushed ${local} → ${target}:${dest} (${size} bytes, ${attempts} attempt${attempts === 1 ? '' : 's'}, ${seconds} s)\n`);
    return EXIT.ok;
  } catch (error) {
    progress?.done();
    const why = interrupt.signal.aborted ? `interrupted by ${String(interrupt.signal.reason)}` : `failed: ${explain(error)}`;
    process.stderr.write(`stevedore: push ${why}\n`);
    return EXIT.fatal;
  } finally {
    process.off('SIGINT', stop).off('SIGTERM', stop);
    await rm(dir, { recursive: true, force: true });
  }
}

/** Checks the operands, loads the config and checks the names in it; throws USAGE. */
async function prepare(operands: readonly string[], configFile: string): Promise<Request> {
  const [local, spec] = operands;
  if (operands.length !== 2 || local === undefined || spec === undefined) {
    throw usage(`expected LOCAL_FILE TARGET:/ABS/PATH, got ${operands.length} argument${operands.length === 1 ? '' : 's'} (usage: ${PUSH_USAGE})`);
  }
  // Target names cannot hold a colon (config schema), so the first one splits.
  const colon = spec.indexOf(':');
  if (colon < 1) throw usage(`${JSON.stringify(spec)}: expected TARGET:/ABS/PATH`);
  const target = spec.slice(0, colon);
  const dest = containerPath(spec.slice(colon + 1));
  const config = await loadConfig(configFile);
  // hasOwn: "constructor" is a valid target name, and every object has one.
  const targetConfig = Object.hasOwn(config.targets, target) ? config.targets[target] : undefined;
  if (!targetConfig) throw usage(`unknown target ${JSON.stringify(target)} (targets: ${Object.keys(config.targets).join(', ')})`);
  await checkLocalFile(local);
  return { config, local, target, targetConfig, dest };
}

// The same rules as an uploaded path (ingest/paths.ts), and a file's own path: "/srv/"
// or "/" would leave push to guess a name.
function containerPath(dest: string): string {
  let checked: string;
  try {
    checked = checkAbsolutePath(dest);
  } catch (error) {
    throw usage(`${JSON.stringify(dest)}: ${errorMessage(error)}`);
  }
  if (checked !== dest || dest === '/') throw usage(`${JSON.stringify(dest)}: expected the path of a file, not of a directory`);
  return dest;
}

// A regular file only: copying a FIFO or a device would block or never end.
async function checkLocalFile(local: string): Promise<void> {
  try {
    if (!(await stat(local)).isFile()) throw new Error('not a regular file');
    await access(local, constants.R_OK);
  } catch (error) {
    throw usage(`${JSON.stringify(local)}: ${errorMessage(error)}`);
  }
}

const usage = (message: string) => new StevedoreError('USAGE', message);

// The agent's rules, except that a target that is down spends an attempt too: the agent
// waits for it without end, which a one-shot command cannot do. Answers the attempts made.
async function pushWithRetries(target: Target, item: PutItem, options: FileOptions, interrupt: AbortSignal, progress: Progress | undefined): Promise<number> {
  for (let attempt = 1; ; attempt += 1) {
    interrupt.throwIfAborted();
    progress?.attempt(attempt);
    const [result] = (await withDeadline(interrupt, options.pushTimeout, (signal) => pushItems(target, [item], signal))) as [PushResult];
    if (result.ok) return attempt;
    const { error } = result;
    if (failureKind(error) === 'permanent' || interrupt.aborted) throw error;
    if (attempt >= options.retry.attempts) {
      throw new StevedoreError(error.code, `gave up after ${attempt} attempts: ${error.message}`, { cause: error });
    }
    await sleep(backoffDelay(attempt, options.retry), undefined, { signal: interrupt });
  }
}

// Our errors by code; anything else (a failed copy into the temp dir) by Node's message,
// which starts with its errno code.
const explain = (error: unknown) => (isStevedoreError(error) ? `${error.code}: ${error.message}` : errorMessage(error));
