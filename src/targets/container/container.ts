// A target inside a real container (Incus, LXD, Docker, Podman). A batch travels as
// one tar stream into one `exec` of batch.sh, which lands every file atomically and
// reports each one; the runtime's own copy carries large files, and stands in where the
// container has no tar, inside one exec of batch.sh that waits while it runs.
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { StevedoreError } from '../../errors.js';
import { randomName } from '../../random.js';
import { failed, failureKind, pushError, type DeleteItem, type PushItem, type PushResult, type PutItem, type Target } from '../target.js';
import { archive } from './archive.js';
import { fileRules } from './classify.js';
import { converse, run } from './cli.js';
import { runHooks } from './hooks.js';
import { chunks, precheck, toResult } from './items.js';
import type { StagingLedger, StagingNote } from '../ledger.js';
import type { Runtime } from './runtime.js';
import { parseReport, planBatch, scriptArgs, stagedPath, type Plan, type Report, type ScriptMode } from './plan.js';

const PROBE = 'command -v tar >/dev/null && echo tar || echo notar';
// Past this size a file goes by the runtime's own copy into its staging directory
// (`incus file push`, `docker cp`, `podman cp`), `exec` left for the checks and the
// renames: for 1 GiB, 1.4× faster than `exec`'s stdin for Incus, ~3× for Docker.
const LARGE_FILE = 64 * 1024 * 1024;
const ABORT_TIMEOUT_MS = 10_000;

type Way = 'tar' | 'copy';

/** `ledger`: where an agent notes staging directories (`stevedore push` runs without one). */
export function createContainerTarget(name: string, runtime: Runtime, logger?: Logger, ledger?: StagingLedger): Target {
  // Read when a container target is made: the build copies it beside this module.
  const SCRIPT = readFileSync(new URL('batch.sh', import.meta.url), 'utf8');
  let way: Way | undefined;

  // Once per container start: a CLI-level failure forgets it, so a replaced container is asked again.
  async function probe(signal: AbortSignal): Promise<Way> {
    if (way) return way;
    const result = await run(runtime, runtime.exec(['sh', '-c', PROBE]), { signal });
    way = result.stdout.trim() === 'tar' ? 'tar' : 'copy';
    if (way === 'copy') {
      logger?.warn({ target: name, container: runtime.container }, 'the container has no tar: pushing with the runtime\'s own copy instead of one archive stream');
    }
    return way;
  }

  function noShell(error: unknown): StevedoreError | undefined {
    if (!(error instanceof StevedoreError) || error.code !== 'TARGET_IO') return undefined;
    const exitCode = error.details.exitCode;
    if (exitCode !== 126 && exitCode !== 127) return undefined;
    return new StevedoreError('CONTAINER_UNSUPPORTED', `container ${runtime.container} has no /bin/sh: stevedore needs sh and mv in the container (${error.message})`);
  }

  const copier = { ...runtime, failures: [...runtime.failures, ...fileRules] };
  const script = (plan: Plan, mode: ScriptMode, tag: string, fix = false) =>
    runtime.exec(['sh', '-c', SCRIPT, 'stevedore', ...scriptArgs(plan, mode, tag, fix)]);

  // Removes a batch's staging directories; true when they are gone (with their container, too).
  async function removeStaging(note: StagingNote, signal: AbortSignal): Promise<boolean> {
    const plan: Plan = { dirs: note.dirs.map((dir) => ({ dir, root: dir, mode: 0o700 })), deletes: [], puts: [] };
    try {
      await run(runtime, script(plan, 'abort', note.tag), { signal });
      return true;
    } catch (error) {
      return nothingThere(error);
    }
  }

  // Gone with the container, or never made: a container without sh runs no batch.sh.
  const nothingThere = (error: unknown) => (error instanceof StevedoreError && error.code === 'TARGET_NOT_FOUND') || noShell(error) !== undefined;

  async function land(plan: Plan, signal: AbortSignal, large: boolean): Promise<Report> {
    // Asked before anything is noted: a container that is down fails here, having made nothing.
    const how: Way = large ? 'copy' : await probe(signal);
    const note = { tag: randomName(9), where: runtime.container, dirs: plan.dirs.map(({ dir }) => dir) };
    if (note.dirs.length === 0) return stage(plan, note.tag, signal, how, large); // deletes only: nothing staged
    await ledger?.note(name, note);
    try {
      const report = await stage(plan, note.tag, signal, how, large);
      await ledger?.clear(name, note.tag);
      return report;
    } catch (error) {
      await afterFailure(note, error);
      throw error;
    }
  }

  // A push cut short can leave part of a file in its staging directories: batch.sh
  // removes them when its input ends, but Podman kills it with its client, and a copy
  // that failed leaves them too. They are removed now, or, if the container cannot be
  // reached (down, or not answering), before the target's next push.
  async function afterFailure(note: StagingNote, error: unknown): Promise<void> {
    const kind = failureKind(error);
    const unreachable = kind === 'down' || kind === 'host';
    if (nothingThere(error) || (!unreachable && (await removeStaging(note, AbortSignal.timeout(ABORT_TIMEOUT_MS))))) await ledger?.clear(name, note.tag);
    else ledger?.leave(name, note);
  }

  // A zero exit with batch.sh's report cut short (seen: podman exec losing all of it):
  // what landed is not known, so the whole batch goes again (each landing is a rename).
  const whole = (stdout: string): Report => {
    const report = parseReport(stdout);
    if (report.ended) return report;
    throw new StevedoreError('TARGET_IO', `${runtime.command} exited 0 but the batch's report came ${stdout.trim() ? 'cut short' : 'empty'}: pushing it again`);
  };

  async function stage(plan: Plan, tag: string, signal: AbortSignal, way: Way, large: boolean): Promise<Report> {
    const entries = plan.puts.map(({ item, dir }) => ({ item, dir, name: stagedPath(item, tag) }));
    if (way === 'tar') {
      const input = entries.length > 0 ? archive(entries) : undefined;
      return whole((await run(runtime, script(plan, 'all', tag), { signal, ...(input ? { input } : {}) })).stdout);
    }
    // One exec: batch.sh makes the staging directories, waits while the runtime's copy
    // fills them, then renames (a second exec cost 60–300 ms a batch).
    let copied = new Map<string, StevedoreError>();
    const answer = async (prepared: string) => {
      // The runtime's copy would follow a refused directory's symlink: its files stay out,
      // as do those of a directory that could not be made.
      const refused = parseReport(prepared).dirErrors;
      copied = await copyIn(entries.filter((entry) => !refused.has(entry.dir)), signal, large);
      // A file whose copy failed may be part-written: batch.sh removes it, never renames it.
      return ['commit', ...plan.puts.flatMap(({ item }, i) => (copied.has(item.id) ? [String(i)] : []))].join(' ');
    };
    const call = script(plan, 'copy', tag, !runtime.copySetsOwner);
    const report = whole((await converse(runtime, call, signal, { ready: 'c - copy', answer })).stdout);
    plan.puts.forEach(({ dir }, i) => {
      const refused = report.dirErrors.get(dir);
      if (refused) report.puts.set(i, refused);
    });
    return { ...report, copyErrors: copied };
  }

  // A large file, or any file without the container's tar: one push per file, or one
  // stream the daemon unpacks (Docker, Podman) for the small ones. Answers the files
  // whose push failed; what the runtime's copy says of the file itself (out of space,
  // refused) is classified as batch.sh's words are.
  async function copyIn(entries: { item: PutItem; name: string }[], signal: AbortSignal, large: boolean): Promise<Map<string, StevedoreError>> {
    const errors = new Map<string, StevedoreError>();
    if (entries.length === 0) return errors;
    if (runtime.copyIn && !large) {
      await run(runtime, runtime.copyIn(), { signal, input: archive(entries) });
      return errors;
    }
    for (const { item, name } of entries) {
      const args = runtime.pushFile(item.source, `/${name}`, item.owner ?? { uid: 0, gid: 0 }, item.mode);
      await run(copier, args, { signal }).catch((error: unknown) => {
        if (!(error instanceof StevedoreError) || error.code !== 'TARGET_IO') throw error;
        errors.set(item.id, error);
      });
    }
    return errors;
  }

  async function pushChunk(deletes: DeleteItem[], puts: PutItem[], results: Map<string, PushResult>, signal: AbortSignal, large = false): Promise<void> {
    const plan = planBatch(deletes, puts);
    let report: Report;
    try {
      report = await land(plan, signal, large);
    } catch (error) {
      way = undefined;
      const cause = noShell(error) ?? pushError(error);
      for (const item of [...deletes, ...puts]) results.set(item.id, failed(cause));
      return;
    }
    plan.deletes.forEach((item, i) => results.set(item.id, toResult(report.deletes.get(i))));
    const again: PutItem[] = [];
    plan.puts.forEach(({ item }, i) => {
      const outcome = report.puts.get(i);
      const copyError = report.copyErrors?.get(item.id);
      if (copyError && large) again.push(item);
      else if (copyError) results.set(item.id, failed(copyError));
      else if (outcome?.status === 'missing' && report.tarError !== undefined && plan.puts.length > 1) again.push(item);
      else results.set(item.id, toResult(outcome));
    });
    // tar stops at its first bad entry: the files it never reached go again one by
    // one, so that one bad file fails alone and the rest land. A large file the
    // runtime's copy could not put in its staging directory goes again by exec: dockerd
    // does not see a tmpfs mounted in the container (`Could not find the file`).
    for (const item of again) await pushChunk([], [item], results, signal);
  }

  return {
    name,
    runtime: runtime.runtime,
    async push(items, signal) {
      // What earlier batches left (a killed agent, a container that went down mid-push),
      // each removal with its own timeout: the push's is for the push.
      await ledger?.sweep(name, runtime.container, (note) => removeStaging(note, AbortSignal.timeout(ABORT_TIMEOUT_MS)));
      const results = new Map<string, PushResult>();
      const valid = await precheck(items, results);
      const isLarge = (item: PushItem): item is PutItem => item.op === 'put' && item.bytes >= LARGE_FILE;
      for (const chunk of chunks(valid.filter((item) => !isLarge(item)))) {
        const deletes = chunk.filter((item): item is DeleteItem => item.op === 'delete');
        const puts = chunk.filter((item): item is PutItem => item.op === 'put');
        await pushChunk(deletes, puts, results, signal);
      }
      for (const item of valid.filter(isLarge)) await pushChunk([], [item], results, signal, true);
      const landed = items.filter((item) => results.get(item.id)?.ok === true);
      const warnings = await runHooks(runtime, landed, signal, logger && logger.child({ target: name }));
      return items.map((item) => {
        const result = results.get(item.id) ?? failed(new StevedoreError('TARGET_IO', 'the container reported nothing for this file'));
        const warning = warnings.get(item.id);
        return result.ok && warning ? { ok: true, warning } : result;
      });
    },
  };
}
