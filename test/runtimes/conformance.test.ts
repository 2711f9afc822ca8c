// One conformance suite for every kind of target: the local target, and each container
// runtime on this machine (real containers from the offline busybox image, real CLIs).
// Each case lands files through the target and reads them back from inside the place
// (test/runtimes/kinds.ts); the cases about a runtime's CLI, containers and daemon
// (runtime-cases.ts) run for the kinds that have one.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStagingLedger, createTarget } from '../../src/targets/index.js';
import type { PushItem, Target } from '../../src/targets/target.js';
import { tempDir } from '../helpers/temp.js';
import { kindsToTest, type TargetKind } from './kinds.js';
import { captureLogs, codes, kindOf, outsideUntouched, plantLinks, push, put, sha } from './pushing.js';
import { runtimeCases } from './runtime-cases.js';

const kinds = await kindsToTest();

describe.each(kinds)('$name', (kind: TargetKind) => {
  let place: string;
  let target: Target;
  const sh = (script: string, ...args: string[]) => kind.sh(place, script, ...args);

  beforeAll(async () => {
    if (kind.missing) throw new Error(`${kind.name} is required under CI=true but cannot be used: ${kind.missing}`);
    place = await kind.create();
    target = createTarget('t', kind.target(place));
  }, 60_000);
  afterAll(async () => {
    if (place) await kind.remove(place);
  }, 60_000);

  it.runIf(kind.can.owners)('lands one file with the configured owner and mode, making missing directories with dir_mode', async () => {
    const dir = await tempDir();
    const item = await put(dir, '/srv/one/a/b/hello.txt', 'hello\n', { owner: { uid: 33, gid: 44 }, mode: 0o640, dirMode: 0o750 });
    expect(codes(await push(target, [item]))).toEqual(['ok']);
    const out = await sh('cat "$R"/srv/one/a/b/hello.txt; stat -c "%u:%g %a" "$R"/srv/one/a/b/hello.txt "$R"/srv/one/a/b "$R"/srv/one; ls -a "$R"/srv/one/a/b');
    expect(out.split('\n')).toEqual(['hello', '33:44 640', '0:0 750', '0:0 750', '.', '..', 'hello.txt']);
  });

  it('lands 300 files across nested directories in one batch, each with its content', async () => {
    const dir = await tempDir();
    const items = await Promise.all(Array.from({ length: 300 }, (_, i) => put(dir, `/srv/many/d${i % 7}/sub${i % 3}/f${i}.bin`, `file ${i}\n`.repeat(i + 1))));
    const results = await push(target, items);
    expect(codes(results).filter((c) => c !== 'ok')).toEqual([]);
    const lines = (await sh('cd "$R"/srv/many && find . -type f | sort | xargs sha256sum')).split('\n');
    const expected = items.map((item, i) => `${sha(`file ${i}\n`.repeat(i + 1))}  .${item.dest.slice('/srv/many'.length)}`).sort((a, b) => (a.slice(66) < b.slice(66) ? -1 : 1));
    expect(lines).toEqual(expected);
    expect(await sh('find "$R"/srv/many -name ".stevedore-*" | wc -l')).toBe('0');
  });

  it('overwrites an existing file and applies a mode no umask may change', async () => {
    const dir = await tempDir();
    expect(codes(await push(target, [await put(dir, '/srv/over/f', 'first version')]))).toEqual(['ok']);
    expect(codes(await push(target, [await put(dir, '/srv/over/f', 'second', { mode: 0o666 })]))).toEqual(['ok']);
    expect(await sh('cat "$R"/srv/over/f; echo; stat -c %a "$R"/srv/over/f; ls -a "$R"/srv/over | wc -l')).toBe('second\n666\n3');
  });

  it('gives each file its own outcome: a directory in the way and a file as a parent fail alone', async () => {
    const dir = await tempDir();
    await sh('mkdir -p "$R"/srv/mixed/taken && echo x > "$R"/srv/mixed/plain');
    const items = [
      await put(dir, '/srv/mixed/a.txt', 'a'),
      await put(dir, '/srv/mixed/taken', 'would replace a directory'),
      await put(dir, '/srv/mixed/plain/under.txt', 'parent is a file'),
      await put(dir, '/srv/mixed/z/b.txt', 'b'),
    ];
    expect(codes(await push(target, items))).toEqual(['ok', 'DEST_IS_DIR', 'DEST_UNSAFE', 'ok']);
    expect(await sh('cd "$R"/srv/mixed && cat a.txt z/b.txt plain; ls -d taken')).toBe('abx\ntaken');
  });

  it('answers a name too long for the place as DEST_TOO_LONG (permanent), lands the rest, and leaves no directory made for nothing', async () => {
    const dir = await tempDir();
    // Past NAME_MAX (255), as on a filesystem with shorter names than ingest allows.
    const long = 'n'.repeat(256);
    await sh('mkdir -p "$R"/srv/long/kept');
    const items = [
      await put(dir, `/srv/long/new/a/${long}/f`, 'a directory name too long'),
      await put(dir, '/srv/long/ok/f', 'ok'),
      await put(dir, `/srv/long/c/${long}`, 'a file name too long'),
      await put(dir, `/srv/long/kept/${long}/g`, 'under a directory that was there'),
    ];
    const results = await push(target, items);
    expect(results.map((r) => (r.ok ? 'ok' : `${r.error.code} ${kindOf(r)}`))).toEqual(['DEST_TOO_LONG permanent', 'ok', 'DEST_TOO_LONG permanent', 'DEST_TOO_LONG permanent']);
    expect(await sh('cd "$R"/srv/long && find . | sort')).toBe('.\n./kept\n./ok\n./ok/f');
  });

  it('refuses a symlink planted below a route\'s dest that leads outside it, writing and removing nothing there; one inside it is followed', async () => {
    const dir = await tempDir();
    await sh(plantLinks);
    const root = '/srv/route';
    const items: PushItem[] = [
      { op: 'delete', id: 'del', dest: '/srv/route/evil/victim', root },
      await put(dir, '/srv/route/evil/pwned', 'x', { root }),
      await put(dir, '/srv/route/evil/deeper/pwned', 'x', { root }),
      await put(dir, '/srv/route/dangling/pwned', 'x', { root }),
      await put(dir, '/srv/route/real/up/etc/pwned', 'x', { root }),
      await put(dir, '/srv/route/inner/ok.txt', 'inner', { root }),
      await put(dir, '/srv/route/plain/ok.txt', 'plain', { root }),
      await put(dir, '/srv/route/file-link', 'replaced the link', { root }),
    ];
    const results = await push(target, items);
    expect(codes(results)).toEqual(['DEST_UNSAFE', 'DEST_UNSAFE', 'DEST_UNSAFE', 'DEST_UNSAFE', 'DEST_UNSAFE', 'ok', 'ok', 'ok']);
    expect(results[1]).toMatchObject({ error: { message: expect.stringContaining('/srv/route/evil leads outside /srv/route through a symlink') } });
    expect(await sh(outsideUntouched)).toBe('victim\nkeep\n1\n0');
    expect(await sh('cat "$R"/srv/route/real/ok.txt "$R"/srv/route/plain/ok.txt; echo; [ -L "$R"/srv/route/file-link ] || cat "$R"/srv/route/file-link')).toBe('innerplain\nreplaced the link');
  });

  it('refuses a dangling symlink even when another directory of the batch makes what it points at', async () => {
    const dir = await tempDir();
    await sh('mkdir -p "$R"/srv/ra/sub "$R"/srv/rb && ln -s "$R"/srv/rb/x "$R"/srv/ra/sub/dangling');
    const items = [await put(dir, '/srv/ra/sub/dangling/g', 'through the link', { root: '/srv/ra' }), await put(dir, '/srv/rb/x/f', 'f', { root: '/srv/rb' })];
    const results = codes(await push(target, items));
    expect(results).toEqual(['DEST_UNSAFE', 'ok']);
    expect(await sh('ls -A "$R"/srv/rb/x')).toBe('f');
  });

  it('removes what a push killed with its agent left, before the next run\'s first push', async () => {
    const dir = await tempDir();
    const notes = path.join(dir, 'staging-notes');
    const killed = createStagingLedger(notes);
    await killed.open();
    // What a push killed with its agent leaves: part of a file under a temp name (in a
    // container, in a staging directory), and its note.
    await killed.note('t', { tag: 'KILLED', where: kind.where(place), dirs: ['/srv/swept', '/srv/swept/gone'] });
    await sh('mkdir -p "$(dirname "$R/srv/swept/$1")" && echo part > "$R/srv/swept/$1"', kind.killedLeaves);
    const { lines, logger } = captureLogs();
    const restarted = createStagingLedger(notes, logger);
    await restarted.open();
    const next = createTarget('t', kind.target(place), logger, restarted);
    expect(codes(await push(next, [await put(dir, '/srv/swept/f', 'whole')]))).toEqual(['ok']);
    expect(await sh('ls -A "$R"/srv/swept; cat "$R"/srv/swept/f')).toBe('f\nwhole');
    expect(restarted.targets()).toEqual([]);
    expect(lines.filter((line) => String(line.msg).includes('an interrupted push left'))).toMatchObject([{ target: 't', dirs: ['/srv/swept', '/srv/swept/gone'] }]);
  });

  it('lands names with shell syntax, spaces, a newline, a leading dash and UTF-8 under exactly those names', async () => {
    const dir = await tempDir();
    const names = ['$(touch /tmp/pwned)', '`id`; rm -rf x', 'a "quoted" \'name\'', 'line\nbreak', '-rf', 'café ☕.txt', '.hidden', '..dots', '*'];
    const items = await Promise.all(names.map((name, i) => put(dir, `/srv/names/${name}`, `${i}`)));
    expect(codes(await push(target, items))).toEqual(names.map(() => 'ok'));
    // /tmp/pwned is where a shell that ran a name would write: the container's, or the host's.
    const check = 'cd "$R"/srv/names && for n; do cat -- "$n"; done; echo; set -- * .[!.]* ..?*; echo $#; ls /tmp/pwned 2>/dev/null | wc -l';
    expect(await sh(check, ...names)).toBe(`${names.map((_, i) => i).join('')}\n${names.length}\n0`);
  });

  it('removes files and directories, and a path already gone is a success', async () => {
    await sh('mkdir -p "$R"/srv/del/tree/deep && echo 1 > "$R"/srv/del/tree/deep/f && echo 2 > "$R"/srv/del/file');
    const items: PushItem[] = ['/srv/del/tree', '/srv/del/file', '/srv/del/never'].map((dest, i) => ({ op: 'delete', id: `d${i}`, dest }));
    expect(codes(await push(target, items))).toEqual(['ok', 'ok', 'ok']);
    expect(await sh('ls -a "$R"/srv/del')).toBe('.\n..');
  });

  it('is atomic: a reader polling the destination sees the old or the new file, never a part', async () => {
    const dir = await tempDir();
    const versions = [Buffer.alloc(2 << 20, 'a'), Buffer.alloc(3 << 20, 'b')];
    const hashes = versions.map(sha);
    expect(codes(await push(target, [await put(dir, '/srv/atomic/f', versions[0] as Buffer)]))).toEqual(['ok']);
    const reader = sh('i=0; while [ $i -lt 300 ]; do sha256sum "$R"/srv/atomic/f 2>/dev/null | cut -c1-64 || echo missing; i=$((i+1)); done');
    let pushes = 0;
    let reading = true;
    void reader.finally(() => (reading = false));
    while (reading || pushes < 4) {
      const version = versions[pushes % 2] as Buffer;
      expect(codes(await push(target, [await put(dir, '/srv/atomic/f', version)]))).toEqual(['ok']);
      pushes += 1;
    }
    const seen = (await reader).split('\n');
    expect(seen).toHaveLength(300);
    expect(seen.filter((hash) => !hashes.includes(hash))).toEqual([]);
    expect(pushes).toBeGreaterThanOrEqual(4);
  });

  it('answers permission denied (permanent) where the place refuses to write', async () => {
    const dir = await tempDir();
    const results = await push(target, [await put(dir, '/sys/stevedore/x', 'x'), await put(dir, '/srv/fine/x', 'x')]);
    expect(codes(results)).toEqual(['PERMISSION_DENIED', 'ok']);
    expect(kindOf(results[0])).toBe('permanent');
  });

  it.runIf(kind.can.owners)('lands a file past 64 MiB (by the runtime\'s own copy) with its content, owner and mode', async () => {
    const dir = await tempDir();
    const data = Buffer.alloc(70 << 20, 7);
    const item = await put(dir, '/srv/large/big.bin', data, { owner: { uid: 5, gid: 6 }, mode: 0o600 });
    expect(codes(await push(target, [item, await put(dir, '/srv/large/small.txt', 'small')]))).toEqual(['ok', 'ok']);
    expect(await sh('sha256sum "$R"/srv/large/big.bin | cut -c1-64; stat -c "%u:%g %a" "$R"/srv/large/big.bin; ls -a "$R"/srv/large'))
      .toBe(`${sha(data)}\n5:6 600\n.\n..\nbig.bin\nsmall.txt`);
  });

  if (kind.runtime) runtimeCases({ runtime: kind.runtime, can: kind.can, place: () => place, target: () => target });
});
