// The walk that never leaves a watched folder, on real directories: every kind of
// symlink a writer can plant, followed (mirror) or not (drop), and special files.
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { mkdir, open, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it, onTestFinished } from 'vitest';
import { isBlocked, lstatBeneath, openBeneath, statBeneath, type HeldRoot } from '../../../src/ingest/watch/beneath.js';
import { StevedoreError } from '../../../src/errors.js';
import { tempDir } from '../../helpers/temp.js';

const run = promisify(execFile);

// in/ holds real/data.txt; outside/ (a sibling) holds secret.txt.
async function folder(): Promise<{ base: string; dir: string; root: HeldRoot }> {
  const base = await tempDir('stevedore-beneath-');
  const dir = path.join(base, 'in');
  await mkdir(path.join(dir, 'real/deep'), { recursive: true });
  await mkdir(path.join(base, 'outside'));
  await writeFile(path.join(dir, 'real/data.txt'), 'data');
  await writeFile(path.join(dir, 'real/deep/more.txt'), 'more');
  await writeFile(path.join(base, 'outside/secret.txt'), 'secret');
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  onTestFinished(() => handle.close());
  return { base, dir, root: { fd: handle.fd, paths: [dir] } };
}

// What opening `rel` as a file gives: its content, or the refusal's kind, or the errno.
async function read(root: HeldRoot, rel: string, follow: boolean): Promise<string> {
  try {
    const handle = await openBeneath(root, rel, 'file', { follow });
    try {
      const stats = await handle.stat();
      return stats.isFile() ? (await handle.readFile('utf8')) : `not a file (${stats.isFIFO() ? 'fifo' : 'other'})`;
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (error instanceof StevedoreError) return `${error.code} ${String(error.details.kind)}${isBlocked(error) ? ' blocked' : ''}`;
    return (error as NodeJS.ErrnoException).code ?? String(error);
  }
}

describe('openBeneath', () => {
  it.each([
    // [what, link name → target, path opened, drop (follow none), mirror (follow inside)]
    ['a plain file', null, 'real/data.txt', 'data', 'data'],
    ['a relative link to a file inside', ['alias.txt', 'real/data.txt'], 'alias.txt', 'SOURCE_UNSAFE symlink', 'data'],
    ['an absolute link to a file inside', ['abs.txt', '{dir}/real/data.txt'], 'abs.txt', 'SOURCE_UNSAFE symlink', 'data'],
    ['a link climbing out with ..', ['up.txt', '../outside/secret.txt'], 'up.txt', 'SOURCE_UNSAFE symlink', 'SOURCE_UNSAFE outside'],
    ['an absolute link outside', ['out.txt', '{base}/outside/secret.txt'], 'out.txt', 'SOURCE_UNSAFE symlink', 'SOURCE_UNSAFE outside'],
    ['a link to a directory inside, on the way', ['lnk', 'real'], 'lnk/data.txt', 'SOURCE_UNSAFE symlink blocked', 'data'],
    ['a link to a directory outside, on the way', ['out', '{base}/outside'], 'out/secret.txt', 'SOURCE_UNSAFE symlink blocked', 'SOURCE_UNSAFE outside blocked'],
    ['.. inside a link that stays inside', ['back', 'real/deep/../deep/more.txt'], 'back', 'SOURCE_UNSAFE symlink', 'more'],
    ['a dangling link', ['dangling', 'nowhere.txt'], 'dangling', 'SOURCE_UNSAFE symlink', 'ENOENT'],
    ['a link to itself', ['loop', 'loop'], 'loop', 'SOURCE_UNSAFE symlink', 'SOURCE_UNSAFE loop'],
    ['.. in the path itself, out of the folder', null, '../outside/secret.txt', 'SOURCE_UNSAFE outside', 'SOURCE_UNSAFE outside'],
    ['a file where a directory should be', null, 'real/data.txt/x', 'ENOTDIR', 'ENOTDIR'],
    ['a missing file', null, 'real/none.txt', 'ENOENT', 'ENOENT'],
  ])('%s', async (_what, link, rel, drop, mirror) => {
    const { base, dir, root } = await folder();
    if (link) await symlink((link[1] as string).replace('{dir}', dir).replace('{base}', base), path.join(dir, link[0] as string));
    expect({ drop: await read(root, rel, false), mirror: await read(root, rel, true) }).toEqual({ drop, mirror });
  });

  it('opens a FIFO at once (non-blocking), as something that is not a file', async () => {
    const { dir, root } = await folder();
    await run('mkfifo', [path.join(dir, 'real/pipe')]);
    expect(await read(root, 'real/pipe', false)).toBe('not a file (fifo)');
    expect((await statBeneath(root, 'real/pipe', { follow: true })).isFIFO()).toBe(true);
  });

  it('an absolute link through another spelling of the folder stays inside when that spelling is held', async () => {
    const { base, dir, root } = await folder();
    await symlink(dir, path.join(base, 'spelling'));
    await symlink(path.join(base, 'spelling/real/data.txt'), path.join(dir, 'via.txt'));
    expect(await read(root, 'via.txt', true)).toBe('SOURCE_UNSAFE outside');
    expect(await read({ ...root, paths: [dir, path.join(base, 'spelling')] }, 'via.txt', true)).toBe('data');
  });

  it('lstatBeneath sees the link itself; statBeneath follows it only inside', async () => {
    const { base, dir, root } = await folder();
    await symlink('real/data.txt', path.join(dir, 'alias.txt'));
    await symlink(path.join(base, 'outside/secret.txt'), path.join(dir, 'out.txt'));
    expect((await lstatBeneath(root, 'alias.txt', { follow: true })).isSymbolicLink()).toBe(true);
    expect((await statBeneath(root, 'alias.txt', { follow: true })).size).toBe(4);
    await expect(statBeneath(root, 'out.txt', { follow: true })).rejects.toMatchObject({ code: 'SOURCE_UNSAFE' });
  });
});
