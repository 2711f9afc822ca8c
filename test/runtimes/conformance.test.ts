// One conformance suite for every container runtime on this machine: real containers
// from the offline busybox image, real CLIs, files read back from inside.
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTarget } from '../../src/targets/index.js';
import type { PushItem, PushResult, PutItem, Target } from '../../src/targets/target.js';
import { tempDir } from '../helpers/temp.js';
import { runtimesToTest, type RuntimeUnderTest } from './runtimes.js';

const list = await runtimesToTest();

const sha = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

let counter = 0;
async function put(dir: string, dest: string, content: string | Buffer, extra: Partial<PutItem> = {}): Promise<PutItem> {
  const source = path.join(dir, `staged-${(counter += 1)}`);
  await writeFile(source, content);
  return { op: 'put', id: `t${counter}`, source, dest, bytes: Buffer.byteLength(content), mode: 0o644, dirMode: 0o755, ...extra };
}

const push = (target: Target, items: PushItem[], ms = 60_000): Promise<PushResult[]> => target.push(items, AbortSignal.timeout(ms));

const codes = (results: PushResult[]) => results.map((r) => (r.ok ? 'ok' : r.error.code));

describe.each(list)('$name', (runtime: RuntimeUnderTest) => {
  let container: string;
  let target: Target;
  const sh = (script: string, ...args: string[]) => runtime.sh(container, script, ...args);

  beforeAll(async () => {
    if (runtime.missing) throw new Error(`${runtime.name} is required under CI=true but cannot be used: ${runtime.missing}`);
    container = await runtime.create();
    target = createTarget('t', runtime.target(container));
  }, 60_000);
  afterAll(async () => {
    if (container) await runtime.remove(container);
  }, 60_000);

  it('lands one file with the configured owner and mode, making missing directories with dir_mode', async () => {
    const dir = await tempDir();
    const item = await put(dir, '/srv/one/a/b/hello.txt', 'hello\n', { owner: { uid: 33, gid: 44 }, mode: 0o640, dirMode: 0o750 });
    expect(codes(await push(target, [item]))).toEqual(['ok']);
    const out = await sh('cat /srv/one/a/b/hello.txt; stat -c "%u:%g %a" /srv/one/a/b/hello.txt /srv/one/a/b /srv/one; ls -a /srv/one/a/b');
    expect(out.split('\n')).toEqual(['hello', '33:44 640', '0:0 750', '0:0 750', '.', '..', 'hello.txt']);
  });

  it('lands 300 files across nested directories in one batch, each with its content', async () => {
    const dir = await tempDir();
    const items = await Promise.all(Array.from({ length: 300 }, (_, i) => put(dir, `/srv/many/d${i % 7}/sub${i % 3}/f${i}.bin`, `file ${i}\n`.repeat(i + 1))));
    const results = await push(target, items);
    expect(codes(results).filter((c) => c !== 'ok')).toEqual([]);
    const lines = (await sh('cd /srv/many && find . -type f | sort | xargs sha256sum')).split('\n');
    const expected = items.map((item, i) => `${sha(`file ${i}\n`.repeat(i + 1))}  .${item.dest.slice('/srv/many'.length)}`).sort((a, b) => (a.slice(66) < b.slice(66) ? -1 : 1));
    expect(lines).toEqual(expected);
    expect(await sh('find /srv/many -name ".stevedore-*" | wc -l')).toBe('0');
  });

  it('overwrites an existing file and applies a mode no umask may change', async () => {
    const dir = await tempDir();
    expect(codes(await push(target, [await put(dir, '/srv/over/f', 'first version')]))).toEqual(['ok']);
    expect(codes(await push(target, [await put(dir, '/srv/over/f', 'second', { mode: 0o666 })]))).toEqual(['ok']);
    expect(await sh('cat /srv/over/f; echo; stat -c %a /srv/over/f; ls -a /srv/over | wc -l')).toBe('second\n666\n3');
  });

  it('gives each file its own outcome: a directory in the way and a file as a parent fail alone', async () => {
    const dir = await tempDir();
    await sh('mkdir -p /srv/mixed/taken && echo x > /srv/mixed/plain');
    const items = [
      await put(dir, '/srv/mixed/a.txt', 'a'),
      await put(dir, '/srv/mixed/taken', 'would replace a directory'),
      await put(dir, '/srv/mixed/plain/under.txt', 'parent is a file'),
      await put(dir, '/srv/mixed/z/b.txt', 'b'),
    ];
    expect(codes(await push(target, items))).toEqual(['ok', 'DEST_IS_DIR', 'DEST_UNSAFE', 'ok']);
    expect(await sh('cat /srv/mixed/a.txt /srv/mixed/z/b.txt /srv/mixed/plain; ls -d /srv/mixed/taken')).toBe('abx\n/srv/mixed/taken');
  });

  it('removes files and directories, and a path already gone is a success', async () => {
    await sh('mkdir -p /srv/del/tree/deep && echo 1 > /srv/del/tree/deep/f && echo 2 > /srv/del/file');
    const items: PushItem[] = ['/srv/del/tree', '/srv/del/file', '/srv/del/never'].map((dest, i) => ({ op: 'delete', id: `d${i}`, dest }));
    expect(codes(await push(target, items))).toEqual(['ok', 'ok', 'ok']);
    expect(await sh('ls -a /srv/del')).toBe('.\n..');
  });
});
