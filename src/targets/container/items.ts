// The per-item edges of a container push: what is refused before anything starts, how a
// batch is cut to fit one command line, and what each line of batch.sh's report means.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { StevedoreError } from '../../errors.js';
import { checkDest, failed, ok, stagedGone, type PushItem, type PushResult } from '../target.js';
import { classify, fileRules } from './classify.js';
import type { ItemOutcome } from './plan.js';

// Arguments travel through the runtime's API into execve in the container; well under
// Linux's 2 MiB, a batch past this many bytes of paths is split.
const MAX_ARG_BYTES = 256 * 1024;

// Refuses unsafe paths and staged files that are gone before anything is started.
export async function precheck(items: readonly PushItem[], results: Map<string, PushResult>): Promise<PushItem[]> {
  const checks = await Promise.all(items.map(async (item) => {
    try {
      checkDest(item.dest);
      if (item.op === 'put') {
        const stats = await stat(item.source).catch(async (error: unknown) => {
          throw await stagedGone(item, error);
        });
        if (stats.size !== item.bytes) throw new StevedoreError('STAGED_CORRUPT', `the staged file for ${item.dest} has ${stats.size} bytes, not ${item.bytes}`);
      }
      return true;
    } catch (error) {
      results.set(item.id, failed(error as StevedoreError));
      return false;
    }
  }));
  return items.filter((_, i) => checks[i]);
}

export function* chunks(items: readonly PushItem[]): Generator<PushItem[]> {
  let chunk: PushItem[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = Buffer.byteLength(item.dest) + path.posix.dirname(item.dest).length + 32;
    if (chunk.length > 0 && bytes + size > MAX_ARG_BYTES) {
      yield chunk;
      chunk = [];
      bytes = 0;
    }
    chunk.push(item);
    bytes += size;
  }
  if (chunk.length > 0) yield chunk;
}

const outcomeCodes = { isdir: 'DEST_IS_DIR', unsafe: 'DEST_UNSAFE', missing: 'TARGET_IO', fail: 'TARGET_IO' } as const;

export function toResult(outcome: ItemOutcome | undefined): PushResult {
  if (!outcome) return failed(new StevedoreError('TARGET_IO', 'the container reported nothing for this file'));
  if (outcome.status === 'ok') return ok;
  const rule = fileRules.find((r) => r.match.test(outcome.message));
  if (rule) return failed(classify([rule], { command: 'sh', stderr: outcome.message }));
  return failed(new StevedoreError(outcomeCodes[outcome.status], outcome.message || outcome.status));
}
