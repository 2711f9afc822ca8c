// A drop folder's file after its push succeeded: removed, or moved under after_push
// keeping its relative path. Only if it is still the version that was pushed: a file
// written again since stays for its newer task.
import { copyFile, lstat, mkdir, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { errnoCode } from '../../errors.js';
import type { TaskOrigin } from '../../queue/task.js';

export interface AfterDropArgs {
  root: string;
  afterPush: string | null;
  origin: TaskOrigin;
  log: Logger;
}

export async function afterDrop({ root, afterPush, origin, log }: AfterDropArgs): Promise<void> {
  const file = path.join(root, origin.path);
  const now = await lstat(file).catch(() => undefined);
  if (!now) return;
  if (now.size !== origin.size || now.mtimeMs !== origin.mtimeMs) {
    log.info({ path: origin.path }, 'kept a dropped file that changed after it was pushed; its new version follows');
    return;
  }
  try {
    if (afterPush === null) await unlink(file);
    else await moveTo(file, path.join(afterPush, origin.path));
  } catch (error) {
    log.error({ path: origin.path, err: error }, afterPush === null ? 'could not remove a pushed file' : 'could not move a pushed file to after_push');
  }
}

async function moveTo(file: string, to: string): Promise<void> {
  await mkdir(path.dirname(to), { recursive: true });
  try {
    await rename(file, to);
  } catch (error) {
    if (errnoCode(error) !== 'EXDEV') throw error;
    await copyFile(file, to);
    await unlink(file);
  }
}
