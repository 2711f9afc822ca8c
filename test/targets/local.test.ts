import { chmod, mkdir, readFile, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { MAX_DEST_BYTES } from '../../src/ingest/paths.js';
import { createStagingLedger, type StagingLedger } from '../../src/targets/ledger.js';
import { createLocalTarget } from '../../src/targets/local.js';
import { failureKind, type PushItem, type PushResult, type PutItem } from '../../src/targets/target.js';
import { startAgent } from '../helpers/agent.js';
import { expectError, send } from '../helpers/http.js';
import { noStrace, traceCalls } from '../helpers/strace.js';
import { tempDir } from '../helpers/temp.js';
import { waitFor } from '../helpers/wait.js';

const never = new AbortController().signal;

interface Setup {
  root: string;
  /** Writes `data` to a fresh source file and returns a push item for `dest`. */
  item(dest: string, data: string | Buffer, options?: Partial<PutItem>): Promise<PutItem>;
  push(items: PushItem[], signal?: AbortSignal): Promise<PushResult[]>;
}

async function setup(ledger?: StagingLedger): Promise<Setup> {
  const base = await tempDir();
  const root = path.join(base, 'root');
  const sources = path.join(base, 'sources');
  await mkdir(sources);
  const target = createLocalTarget({ name: 'box', root, ...(ledger ? { ledger } : {}) });
  let n = 0;
  return {
    root,
    async item(dest, data, options = {}) {
      const source = path.join(sources, `${(n += 1)}.staged`);
      await writeFile(source, data, { mode: 0o600 });
      return { op: 'put' as const, id: `task${n}`, source, dest, bytes: Buffer.byteLength(data), mode: 0o644, dirMode: 0o755, ...options };
    },
    push: (items, signal = never) => target.push(items, signal),
  };
}

/** Every file and directory under `dir`, relative to it. */
const walk = async (dir: string) => (await readdir(dir, { recursive: true })).map(String).sort();
const codes = (results: PushResult[]) => results.map((r) => (r.ok ? 'ok' : r.error.code));

describe('local target', () => {
  // A drop watch removes its host file once the push is done, and a watched file's copy
  // in the spool is not flushed when staged: linked as it is, a power cut after the
  // removal could leave the landed name with no data (only a SIGKILL is tested for real).
  it.skipIf(noStrace)('flushes a watched file\'s copy before linking it into place, and an upload\'s (flushed when staged) not again', async () => {
    const s = await setup();
    const watched = await s.item('/srv/watched.txt', 'from a drop folder', { unflushed: true });
    const uploaded = await s.item('/srv/uploaded.txt', 'from an upload');
    let results: PushResult[] = [];
    const calls = await traceCalls(['openat', 'fdatasync', 'link', 'linkat'], async () => {
      results = await s.push([watched, uploaded]);
    });
    expect(codes(results)).toEqual(['ok', 'ok']);
    const flushesBeforeLink = (source: string) => {
      const quoted = JSON.stringify(source);
      const linked = calls.find((c) => (c.name === 'link' && c.args.startsWith(quoted)) || (c.name === 'linkat' && c.args.includes(quoted)));
      expect(linked, `no link of ${source}`).toBeDefined();
      const opens = calls.filter((c) => c.name === 'openat' && c.args.includes(quoted) && /^\d+$/.test(c.result));
      return opens.flatMap((o) => calls.filter((c) => c.name === 'fdatasync' && c.args === o.result && c.start > o.end && c.end < (linked?.start ?? 0)));
    };
    expect(flushesBeforeLink(watched.source)).toHaveLength(1);
    expect(flushesBeforeLink(uploaded.source)).toHaveLength(0);
  });

  it('refuses a planted symlink that leads outside the root (DEST_UNSAFE) and writes nothing there', async () => {
    const s = await setup();
    const outside = await tempDir('stevedore-outside-');
    await mkdir(s.root, { recursive: true });
    await symlink(outside, path.join(s.root, 'srv'));
    const items = [await s.item('/srv/x.txt', 'x'), await s.item('/srv/deep/y.txt', 'y'), await s.item('/ok.txt', 'fine')];
    expect(codes(await s.push(items))).toEqual(['DEST_UNSAFE', 'DEST_UNSAFE', 'ok']);
    expect(await walk(outside)).toEqual([]);
  });

  it('refuses `..` and `.` segments, which would climb out of the root', async () => {
    const s = await setup();
    const items = [await s.item('/../escaped.txt', 'x'), await s.item('/srv/./../../escaped2.txt', 'x')];
    expect(codes(await s.push(items))).toEqual(['DEST_UNSAFE', 'DEST_UNSAFE']);
    expect((await walk(path.dirname(s.root))).filter((name) => name.includes('escaped'))).toEqual([]);
  });

  it('leaves no .stevedore- temp files behind after cancelled or failed pushes', async () => {
    const s = await setup();
    const big = await s.item('/srv/big.bin', Buffer.alloc(32 * 2 ** 20, 'z'));
    // A staged file that vanished is a permanent failure: retrying cannot bring it back.
    const missing = { ...(await s.item('/srv/missing', 'x')), source: path.join(s.root, '..', 'no-such-file') };
    expect(codes(await s.push([big], AbortSignal.abort()))).toEqual(['PUSH_TIMEOUT']);
    expect(codes(await s.push([missing]))).toEqual(['STAGED_MISSING']);
    // Cancelled while copying: whichever step the abort hits, no temp file stays.
    const controller = new AbortController();
    const pushing = s.push([big], controller.signal);
    setImmediate(() => controller.abort());
    const [result] = await pushing;
    if (result?.ok) expect((await stat(path.join(s.root, 'srv/big.bin'))).size).toBe(big.bytes);
    // Cancelled: nothing landed, and the directory made for it went with it.
    else expect(await walk(s.root)).toEqual([]);
    expect((await walk(s.root)).filter((name) => path.basename(name).startsWith('.stevedore-'))).toEqual([]);
  });
});

describe('local target edges', () => {
  it('lands a name of 244 UTF-8 bytes (the temp name does not grow with it)', async () => {
    const s = await setup();
    const name = 'ж'.repeat(122); // 244 bytes, under NAME_MAX
    expect(await s.push([await s.item(`/srv/${name}`, 'cyrillic')])).toEqual([{ ok: true }]);
    expect(await readFile(path.join(s.root, 'srv', name), 'utf8')).toBe('cyrillic');
  });

  it('a re-push of an already landed staged file leaves no temp name behind', async () => {
    const s = await setup();
    const item = await s.item('/srv/again.txt', 'same inode');
    expect(await s.push([item])).toEqual([{ ok: true }]);
    // After a crash between landing and the journal's `done`, the same staged file goes again.
    expect(await s.push([item])).toEqual([{ ok: true }]);
    expect(await readdir(path.join(s.root, 'srv'))).toEqual(['again.txt']);
  });

  it('links a new name straight to the staged inode with no staging note; a name already there is replaced through a temp name', async () => {
    const ledger = createStagingLedger(path.join(await tempDir(), 'staging-notes'));
    await ledger.open();
    const noted: string[] = [];
    const s = await setup({ ...ledger, note: (target, note) => (noted.push(note.tag), ledger.note(target, note)) });
    const first = await s.item('/srv/n/f.txt', 'first');
    expect(await s.push([first])).toEqual([{ ok: true }]);
    expect((await stat(path.join(s.root, 'srv/n/f.txt'))).ino).toBe((await stat(first.source)).ino);
    expect(noted).toEqual([]);
    const second = await s.item('/srv/n/f.txt', 'second');
    expect(await s.push([second, await s.item('/srv/n/g.txt', 'g')])).toEqual([{ ok: true }, { ok: true }]);
    expect(await readFile(path.join(s.root, 'srv/n/f.txt'), 'utf8')).toBe('second');
    expect(noted).toHaveLength(1);
    expect(await readdir(path.join(s.root, 'srv/n'))).toEqual(['f.txt', 'g.txt']);
    expect(ledger.targets()).toEqual([]);
  });

  it('in one batch, a directory delete runs before a put under that directory', async () => {
    const s = await setup();
    await s.push([await s.item('/srv/d/old.txt', 'old')]);
    const results = await s.push([await s.item('/srv/d/new.txt', 'new'), { op: 'delete', id: 'del', dest: '/srv/d' }]);
    expect(results).toEqual([{ ok: true }, { ok: true }]);
    expect(await readdir(path.join(s.root, 'srv/d'))).toEqual(['new.txt']);
  });

  // Where the staged file cannot be linked (state_dir on another filesystem, or a staged
  // file it may not chmod), the file is copied to a temp name and given its owner and mode
  // there: a mode without the owner's write bit (0400, a key) must not keep an agent that
  // is not root from finishing it. Run as nobody, with a staged file it does not own.
  it.skipIf(process.getuid?.() !== 0)('copies a file of mode 0400 when it cannot link it, as a user who is not root', async () => {
    const base = await tempDir();
    await chmod(base, 0o755);
    const source = path.join(base, 'key.staged');
    await writeFile(source, 'secret', { mode: 0o444 });
    const root = path.join(base, 'root');
    await mkdir(root, { mode: 0o777 });
    await chmod(root, 0o777);
    const script = path.join(base, 'push.mts');
    const local = fileURLToPath(new URL('../../src/targets/local.ts', import.meta.url));
    await writeFile(script, [
      `import { createLocalTarget } from ${JSON.stringify(local)};`,
      `const target = createLocalTarget({ name: 'box', root: ${JSON.stringify(root)} });`,
      `const item = { op: 'put', id: 'a', source: ${JSON.stringify(source)}, dest: '/etc/app/key', bytes: 6, mode: 0o400, dirMode: 0o755 };`,
      'const results = await target.push([item], new AbortController().signal);',
      'console.log(JSON.stringify(results.map((r) => (r.ok ? \'ok\' : `${r.error.code}: ${r.error.message}`))));',
    ].join('\n'));
    const tsx = fileURLToPath(new URL('../../node_modules/.bin/tsx', import.meta.url));
    const { stdout } = await execa('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', tsx, script], { cwd: base, env: { HOME: base } });
    expect(stdout).toBe('["ok"]');
    const landed = path.join(root, 'etc/app/key');
    expect(await readFile(landed, 'utf8')).toBe('secret');
    expect(((await stat(landed)).mode & 0o777).toString(8)).toBe('400');
    expect(await readdir(path.join(root, 'etc/app'))).toEqual(['key']);
  });

  // A mirror's delete can come after a put made a file where the directory was: the dest
  // is gone all the same (a container target says ok too), not an unsafe path to dead-letter.
  it('a delete under a file (or under a symlink to one inside the root) finds nothing there: ok', async () => {
    const s = await setup();
    await s.push([await s.item('/srv/a', 'now a file')]);
    await symlink('a', path.join(s.root, 'srv/link'));
    const results = await s.push([{ op: 'delete', id: 'd1', dest: '/srv/a/b' }, { op: 'delete', id: 'd2', dest: '/srv/link/b/c' }]);
    expect(codes(results)).toEqual(['ok', 'ok']);
    expect(await readFile(path.join(s.root, 'srv/a'), 'utf8')).toBe('now a file');
  });

  // The sweep of what a killed agent's note names is in the conformance suite
  // (test/runtimes/conformance.test.ts "removes what a push killed"); here, what it keeps.
  it('removes only what a note for this root names: one for another root is dropped, a name no note names stays', async () => {
    const notes = path.join(await tempDir(), 'staging-notes');
    const killed = createStagingLedger(notes);
    await killed.open();
    const next = createStagingLedger(notes);
    const s = await setup(next);
    // A note from when this target had another root: said and dropped, nothing here touched.
    await killed.note('box', { tag: 'MOVED', where: '/old/root', dirs: ['/srv/a'] });
    await next.open();
    await mkdir(path.join(s.root, 'srv/a'), { recursive: true });
    await writeFile(path.join(s.root, 'srv/a/.stevedore-MOVED-1.tmp'), 'named by a note for another root');
    await writeFile(path.join(s.root, 'srv/a/.stevedore-OTHER-1.tmp'), 'not named by any note');
    expect(codes(await s.push([await s.item('/srv/a/f', 'whole')]))).toEqual(['ok']);
    expect(await walk(path.join(s.root, 'srv/a'))).toEqual(['.stevedore-MOVED-1.tmp', '.stevedore-OTHER-1.tmp', 'f']);
    expect(next.targets()).toEqual([]);
    expect(await readdir(notes)).toEqual([]); // this batch's own note is gone too
  });
});

// A destination too long for the host (issue 10, item 11): root + dest passes PATH_MAX,
// or a name passes the filesystem's NAME_MAX. It fails once, for good, and the
// directories made for it go.
describe('a destination too long for the host', () => {
  /** A dest of `segments` directories of 250 bytes and a file name that brings it to `total` bytes. */
  const longDest = (segments: number, total: number) => {
    const dir = Array.from({ length: segments }, (_, i) => `${i}`.padEnd(250, 'd')).join('/');
    return `/${dir}/${'f'.repeat(total - dir.length - 2)}`;
  };
  const kinds = (results: PushResult[]) => results.map((r) => (r.ok ? 'ok' : `${r.error.code} ${failureKind(r.error)}`));

  // [label, dest]: each fails at another step of the walk.
  const rows: [string, string][] = [
    // The longest dest ingest lets through (4,074 bytes): its directories fit under the
    // root, the rename onto the final name does not.
    ['the longest dest ingest accepts, past PATH_MAX under the root only at its last name', longDest(16, MAX_DEST_BYTES)],
    ['a directory chain that crosses PATH_MAX on the way', longDest(17, 4400)],
    ['a 256-byte directory name below two new directories', `/a/b/${'n'.repeat(256)}/f`],
    ['a 256-byte file name below two new directories', `/a/b/${'n'.repeat(256)}`],
  ];

  it.each(rows)('%s: DEST_TOO_LONG, permanent, and no directory left', async (_label, dest) => {
    const s = await setup();
    await mkdir(s.root, { recursive: true });
    const [result] = await s.push([await s.item(dest, 'x')]);
    expect(kinds([result as PushResult])).toEqual(['DEST_TOO_LONG permanent']);
    expect((result as { error: Error }).error.message).toMatch(/^too long for this host: under \/\S+ the destination is a \d+-byte path/);
    expect(await walk(s.root)).toEqual([]);
  });

  // What was there before stays too: the conformance suite's "a name too long", for every target.
  it('keeps a directory the batch made when another file of it landed there', async () => {
    const s = await setup();
    const items = [await s.item('/new/sub/ok.txt', 'landed'), await s.item(`/new/sub/${'n'.repeat(256)}/f`, 'too long')];
    expect(codes(await s.push(items))).toEqual(['ok', 'DEST_TOO_LONG']);
    expect(await walk(s.root)).toEqual(['new', 'new/sub', 'new/sub/ok.txt']);
  });

  it('through an agent: an upload of the longest dest ingest accepts is dead-lettered after one attempt, not retried', async () => {
    const t = await startAgent();
    const dest = `/srv/files${longDest(16, MAX_DEST_BYTES - '/srv/files'.length)}`;
    expect(Buffer.byteLength(dest)).toBe(MAX_DEST_BYTES);
    const answer = await send(t.url, `/drop/files/${dest.slice('/srv/files/'.length)}`, { body: 'long', headers: { prefer: 'wait=10' } });
    const task = expectError(answer, 502, 'PUSH_FAILED').error.task as Record<string, unknown>;
    expect(task).toMatchObject({ status: 'failed', dest, attempts: 1, error: { code: 'DEST_TOO_LONG' } });
    await waitFor(async () => (await readdir(path.join(t.stateDir, 'dead-letter'))).length === 1, { what: 'the dead-letter entry' });
    expect(await readFile(path.join(t.stateDir, 'dead-letter', String(task.id), 'data'), 'utf8')).toBe('long');
    expect(await walk(t.root)).toEqual([]);
  });

  it('a put that fails for another reason leaves no directory made for it either', async () => {
    const s = await setup();
    const missing = { ...(await s.item('/fresh/a/b/x', 'x')), source: path.join(s.root, '..', 'no-such-file') };
    expect(codes(await s.push([missing]))).toEqual(['STAGED_MISSING']);
    expect(await walk(s.root)).toEqual([]);
  });
});
