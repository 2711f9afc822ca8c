// A route's or watch's `exec`: run once in the container after a batch that landed at
// least one of its files (like compose's sync+exec). A failure is a warning on those
// tasks and a log line, never a retry: the files are in place.
import type { Logger } from 'pino';
import { StevedoreError } from '../../errors.js';
import type { PushItem } from '../target.js';
import { run } from './cli.js';
import type { Runtime } from './runtime.js';

export async function runHooks(runtime: Runtime, landed: readonly PushItem[], signal: AbortSignal, logger?: Logger): Promise<Map<string, StevedoreError>> {
  const byCommand = new Map<string, { argv: readonly string[]; ids: string[] }>();
  for (const item of landed) {
    if (!item.exec) continue;
    const key = JSON.stringify(item.exec);
    const entry = byCommand.get(key) ?? { argv: item.exec, ids: [] };
    entry.ids.push(item.id);
    byCommand.set(key, entry);
  }
  const warnings = new Map<string, StevedoreError>();
  for (const { argv, ids } of byCommand.values()) {
    try {
      await run(runtime, runtime.exec(argv), { signal });
      logger?.info({ exec: argv, tasks: ids.length }, 'exec ran');
    } catch (error) {
      const cause = error instanceof StevedoreError ? error : undefined;
      const warning = new StevedoreError('EXEC_FAILED', `exec ${JSON.stringify(argv)} failed: ${cause?.message ?? String(error)}`, { cause: error });
      logger?.error({ exec: argv, tasks: ids, code: cause?.code, err: warning.message }, 'exec failed after the files landed');
      ids.forEach((id) => warnings.set(id, warning));
    }
  }
  return warnings;
}
