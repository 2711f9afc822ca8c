// One conformance suite for every container runtime on this machine: real containers
// from the offline busybox image, real CLIs, files read back from inside.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/log.js';
import { createStagingLedger, createTarget } from '../../src/targets/index.js';
import { failureKind, type PushItem, type PushResult, type PutItem, type Target } from '../../src/targets/target.js';
import { tempDir } from '../helpers/temp.js';
import { waitFor } from '../helpers/wait.js';
import { parseReport, planBatch, scriptArgs } from '../../src/targets/container/plan.js';
import { NOTAR_IMAGE, runtimesToTest, wrapCli, type Daemon, type RuntimeUnderTest, type WrapOptions } from './runtimes.js';

const BATCH = await readFile(new URL('../../src/targets/container/batch.sh', import.meta.url), 'utf8');

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
const kindOf = (result: PushResult | undefined) => (result && !result.ok ? failureKind(result.error) : 'ok');

/** Sets environment variables for the rest of the test (the CLIs inherit them). */
function setEnv(vars: Record<string, string>): void {
  const saved = Object.fromEntries(Object.keys(vars).map((key) => [key, process.env[key]]));
  Object.assign(process.env, vars);
  onTestFinished(() => {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) Reflect.deleteProperty(process.env, key);
      else process.env[key] = value;
    }
  });
}

/** Puts a wrapper named like the runtime's CLI first on PATH; answers the file it logs each call to. */
async function countCalls(command: string, options?: WrapOptions): Promise<string> {
  const { dir, log } = await wrapCli(command, options);
  setEnv({ PATH: `${dir}:${process.env.PATH ?? ''}` });
  return log;
}

/** A logger whose lines a test can read. */
function captureLogs() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  return { lines, logger: createLogger({ level: 'debug', format: 'json' }, sink) };
}

// Environment that points each CLI at a daemon socket that does not exist.
const noDaemon: Record<string, Record<string, string>> = {
  incus: { INCUS_DIR: '/nonexistent-stevedore' },
  lxd: { LXD_DIR: '/nonexistent-stevedore' },
  docker: { DOCKER_HOST: 'unix:///nonexistent-stevedore.sock' },
  podman: { CONTAINER_HOST: 'unix:///nonexistent-stevedore.sock' },
};

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

  it('answers a name too long for the container as DEST_TOO_LONG (permanent), lands the rest, and leaves no directory made for nothing', async () => {
    const dir = await tempDir();
    // Past NAME_MAX (255), as on a filesystem with shorter names than ingest allows.
    const long = 'n'.repeat(256);
    await sh('mkdir -p /srv/long/kept');
    const items = [
      await put(dir, `/srv/long/new/a/${long}/f`, 'a directory name too long'),
      await put(dir, '/srv/long/ok/f', 'ok'),
      await put(dir, `/srv/long/c/${long}`, 'a file name too long'),
      await put(dir, `/srv/long/kept/${long}/g`, 'under a directory that was there'),
    ];
    const results = await push(target, items);
    expect(results.map((r) => (r.ok ? 'ok' : `${r.error.code} ${kindOf(r)}`))).toEqual(['DEST_TOO_LONG permanent', 'ok', 'DEST_TOO_LONG permanent', 'DEST_TOO_LONG permanent']);
    expect(await sh('cd /srv/long && find . | sort')).toBe('.\n./kept\n./ok\n./ok/f');
  });

  // A route's dest is the operator's; what lies below it may be planted by whoever runs
  // the container. Links: evil → /outside, dangling → /outside/new, real/up → /srv (all
  // outside the route), inner → real (inside it), file-link → /outside/victim.
  const plantLinks = 'mkdir -p /srv/route/real /outside && echo keep > /outside/victim && cd /srv/route && ln -s /outside evil'
    + ' && ln -s /outside/new dangling && ln -s ../.. real/up && ln -s /srv/route/real inner && ln -s /outside/victim file-link';
  const outsideUntouched = 'ls -A /outside; cat /outside/victim; ls /srv/etc 2>&1 >/dev/null | wc -l; find /srv /outside -name ".stevedore-*" | wc -l';

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
    expect(await sh('cat /srv/route/real/ok.txt /srv/route/plain/ok.txt; echo; [ -L /srv/route/file-link ] || cat /srv/route/file-link')).toBe('innerplain\nreplaced the link');
  });

  it('refuses a dangling symlink even when another directory of the batch makes what it points at', async () => {
    const dir = await tempDir();
    await sh('mkdir -p /srv/ra/sub /srv/rb && ln -s /srv/rb/x /srv/ra/sub/dangling');
    const items = [await put(dir, '/srv/ra/sub/dangling/g', 'through the link', { root: '/srv/ra' }), await put(dir, '/srv/rb/x/f', 'f', { root: '/srv/rb' })];
    expect(codes(await push(target, items))).toEqual(['DEST_UNSAFE', 'ok']);
    expect(await sh('ls -A /srv/rb/x')).toBe('f');
  });

  it('checks its staging directory again before chown and rename: one swapped for a symlink meanwhile is refused, nothing moved or chowned through it', async () => {
    const batch = (...args: string[]) => sh(BATCH, ...args);
    await sh('mkdir -p /srv/swap/d /secret && echo s > /secret/key && chmod 600 /secret/key');
    const plan = planBatch([], [{ op: 'put', id: 'x', source: '/dev/null', dest: '/srv/swap/d/f', bytes: 0, mode: 0o644, dirMode: 0o755, owner: { uid: 33, gid: 44 }, root: '/srv/swap' }]);
    await batch(...scriptArgs(plan, 'prepare', 'T1', true));
    // What a user who owns /srv/swap/d could do while the runtime's copy runs:
    await sh('cd /srv/swap/d && mv .stevedore-T1 old && ln -s /secret .stevedore-T1 && echo x > /secret/f');
    expect(parseReport(await batch(...scriptArgs(plan, 'commit', 'T1', true))).puts.get(0)).toMatchObject({ status: 'unsafe' });
    expect(await sh('ls -A /srv/swap/d; ls -A /secret; stat -c "%u:%g %a" /secret/key /secret/f')).toBe('.stevedore-T1\nold\nf\nkey\n0:0 600\n0:0 644');
  });

  it('removes the staging directory an agent killed mid-push left, before the next run\'s first push', async () => {
    const dir = await tempDir();
    const notes = path.join(dir, 'staging-notes');
    const killed = createStagingLedger(notes);
    await killed.open();
    // What a push killed with its agent leaves: a staging directory with part of a file, and its note.
    await killed.note('t', { tag: 'KILLED', where: container, dirs: ['/srv/swept', '/srv/swept/gone'] });
    await sh('mkdir -p /srv/swept/.stevedore-KILLED && echo part > /srv/swept/.stevedore-KILLED/f');
    const { lines, logger } = captureLogs();
    const restarted = createStagingLedger(notes, logger);
    await restarted.open();
    const next = createTarget('t', runtime.target(container), logger, restarted);
    expect(codes(await push(next, [await put(dir, '/srv/swept/f', 'whole')]))).toEqual(['ok']);
    expect(await sh('ls -A /srv/swept; cat /srv/swept/f')).toBe('f\nwhole');
    expect(restarted.targets()).toEqual([]);
    expect(lines.filter((line) => String(line.msg).includes('an interrupted push left'))).toMatchObject([{ target: 't', dirs: ['/srv/swept', '/srv/swept/gone'] }]);
  });

  it('lands names with shell syntax, spaces, a newline, a leading dash and UTF-8 under exactly those names', async () => {
    const dir = await tempDir();
    const names = ['$(touch /tmp/pwned)', '`id`; rm -rf x', 'a "quoted" \'name\'', 'line\nbreak', '-rf', 'café ☕.txt', '.hidden', '..dots', '*'];
    const items = await Promise.all(names.map((name, i) => put(dir, `/srv/names/${name}`, `${i}`)));
    expect(codes(await push(target, items))).toEqual(names.map(() => 'ok'));
    const check = 'cd /srv/names && for n; do cat -- "$n"; done; echo; set -- * .[!.]* ..?*; echo $#; ls /tmp/pwned 2>/dev/null | wc -l';
    expect(await sh(check, ...names)).toBe(`${names.map((_, i) => i).join('')}\n${names.length}\n0`);
  });

  it('removes files and directories, and a path already gone is a success', async () => {
    await sh('mkdir -p /srv/del/tree/deep && echo 1 > /srv/del/tree/deep/f && echo 2 > /srv/del/file');
    const items: PushItem[] = ['/srv/del/tree', '/srv/del/file', '/srv/del/never'].map((dest, i) => ({ op: 'delete', id: `d${i}`, dest }));
    expect(codes(await push(target, items))).toEqual(['ok', 'ok', 'ok']);
    expect(await sh('ls -a /srv/del')).toBe('.\n..');
  });

  it('lands many files with one CLI call after the first probe, not one per file', async () => {
    const dir = await tempDir();
    const log = await countCalls(runtime.command);
    const fresh = createTarget('t', runtime.target(container));
    const items = await Promise.all(Array.from({ length: 200 }, (_, i) => put(dir, `/srv/calls/f${i}`, `${i}`)));
    expect(codes(await push(fresh, items)).every((c) => c === 'ok')).toBe(true);
    expect(codes(await push(fresh, [await put(dir, '/srv/calls/again', 'x')]))).toEqual(['ok']);
    expect((await readFile(log, 'utf8')).trim().split('\n')).toEqual(['exec', 'exec', 'exec']); // probe, batch, batch
    expect(await sh('ls /srv/calls | wc -l')).toBe('201');
  });

  it('is atomic: a reader polling the destination sees the old or the new file, never a part', async () => {
    const dir = await tempDir();
    const versions = [Buffer.alloc(2 << 20, 'a'), Buffer.alloc(3 << 20, 'b')];
    const hashes = versions.map(sha);
    expect(codes(await push(target, [await put(dir, '/srv/atomic/f', versions[0] as Buffer)]))).toEqual(['ok']);
    const reader = sh('i=0; while [ $i -lt 300 ]; do sha256sum /srv/atomic/f 2>/dev/null | cut -c1-64 || echo missing; i=$((i+1)); done');
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

  it('answers permission denied (permanent) where the container refuses to write', async () => {
    const dir = await tempDir();
    const results = await push(target, [await put(dir, '/sys/stevedore/x', 'x'), await put(dir, '/srv/fine/x', 'x')]);
    expect(codes(results)).toEqual(['PERMISSION_DENIED', 'ok']);
    expect(kindOf(results[0])).toBe('permanent');
  });

  it('without tar in the container, falls back to the runtime\'s own copy, says so once, and still lands atomically with owner and mode', async () => {
    const dir = await tempDir();
    const bare = await runtime.create('sd-notar', NOTAR_IMAGE);
    onTestFinished(() => runtime.remove(bare));
    expect(await runtime.sh(bare, 'command -v tar || echo none')).toBe('none');
    const { lines, logger } = captureLogs();
    const fallback = createTarget('bare', runtime.target(bare), logger);
    const items = [
      await put(dir, '/srv/notar/a.txt', 'a', { owner: { uid: 33, gid: 44 }, mode: 0o640 }),
      await put(dir, '/srv/notar/deep/b.txt', 'bb'),
    ];
    expect(codes(await push(fallback, items))).toEqual(['ok', 'ok']);
    expect(codes(await push(fallback, [await put(dir, '/srv/notar/a.txt', 'a2', { owner: { uid: 33, gid: 44 }, mode: 0o640 })]))).toEqual(['ok']);
    expect(await runtime.sh(bare, 'cat /srv/notar/a.txt /srv/notar/deep/b.txt; echo; stat -c "%u:%g %a" /srv/notar/a.txt /srv/notar/deep/b.txt; find /srv -name ".stevedore-*" | wc -l'))
      .toBe('a2bb\n33:44 640\n0:0 644\n0');
    expect(lines.filter((line) => String(line.msg).includes('has no tar'))).toHaveLength(1);

    // The runtime's copy follows symlinks: a refused directory's files are never copied.
    await runtime.sh(bare, plantLinks);
    const root = '/srv/route';
    const linked = [await put(dir, '/srv/route/evil/pwned', 'x', { root }), await put(dir, '/srv/route/plain/ok.txt', 'plain', { root })];
    expect(codes(await push(fallback, linked))).toEqual(['DEST_UNSAFE', 'ok']);
    expect(await runtime.sh(bare, outsideUntouched)).toBe('victim\nkeep\n1\n0');
  });

  it('runs exec after a batch lands, once; a failing exec is a warning on each landed task, not a failure', async () => {
    const dir = await tempDir();
    const exec = ['sh', '-c', 'echo "$(ls /srv/hooked | wc -l)" >> /tmp/hook.log'];
    const items = await Promise.all([1, 2, 3].map((i) => put(dir, `/srv/hooked/f${i}`, `${i}`, { exec })));
    const results = await push(target, items);
    expect(results).toEqual([{ ok: true }, { ok: true }, { ok: true }]);
    expect(await sh('cat /tmp/hook.log')).toBe('3');
    const failing = await push(target, [await put(dir, '/srv/hooked/f4', '4', { exec: ['sh', '-c', 'echo nope >&2; exit 3'] })]);
    expect(failing[0]).toMatchObject({ ok: true, warning: { code: 'EXEC_FAILED', message: expect.stringContaining('nope') } });
    expect(await sh('cat /srv/hooked/f4')).toBe('4');
  });

  it('kills a push that outlives its timeout and leaves nothing half-written', async () => {
    const dir = await tempDir();
    const big = await put(dir, '/srv/slow/big.bin', Buffer.alloc(256 << 20, 1));
    const results = await push(target, [big], 150);
    expect(codes(results)).toEqual(['PUSH_TIMEOUT']);
    expect(kindOf(results[0])).toBe('transient');
    expect(await sh('ls /srv/slow/big.bin 2>&1 || true')).toContain('No such file');
    // The unpacking side ends on its own once its input is cut; its staging goes with it.
    await waitFor(async () => (await sh('find /srv/slow -name ".stevedore-*" | wc -l')) === '0', { timeoutMs: 20_000, what: 'no staging left' });
  });

  it('lands a file past 64 MiB (Incus and LXD by their own file push) with its content, owner and mode', async () => {
    const dir = await tempDir();
    const data = Buffer.alloc(70 << 20, 7);
    const item = await put(dir, '/srv/large/big.bin', data, { owner: { uid: 5, gid: 6 }, mode: 0o600 });
    expect(codes(await push(target, [item, await put(dir, '/srv/large/small.txt', 'small')]))).toEqual(['ok', 'ok']);
    expect(await sh('sha256sum /srv/large/big.bin | cut -c1-64; stat -c "%u:%g %a" /srv/large/big.bin; ls -a /srv/large'))
      .toBe(`${sha(data)}\n5:6 600\n.\n..\nbig.bin\nsmall.txt`);
  });

  it('refuses a container without sh as unsupported (permanent), naming what it needs', async () => {
    const dir = await tempDir();
    const shell = await runtime.create('sd-nosh', NOTAR_IMAGE);
    onTestFinished(() => runtime.remove(shell));
    await runtime.sh(shell, 'rm /bin/sh /bin/dash');
    const results = await push(createTarget('nosh', runtime.target(shell)), [await put(dir, '/srv/x', 'x')]);
    expect(codes(results)).toEqual(['CONTAINER_UNSUPPORTED']);
    expect(kindOf(results[0])).toBe('permanent');
    expect(results[0]).toMatchObject({ error: { message: expect.stringContaining('needs sh and mv') } });
  });

  it('runs its CLI with an argument array, never a shell: metacharacters in a container name stay characters', async () => {
    const dir = await tempDir();
    const marker = path.join(dir, 'pwned');
    const hostile = createTarget('hostile', runtime.target(`x;touch ${marker};$(touch ${marker})`));
    const results = await push(hostile, [await put(dir, '/srv/x', 'x')]);
    expect(results[0]?.ok).toBe(false);
    expect(existsSync(marker)).toBe(false);
  });

  it('classifies a container that does not exist as permanent, naming it', async () => {
    const dir = await tempDir();
    const ghost = createTarget('ghost', runtime.target('stevedore-no-such-container'));
    const results = await push(ghost, [await put(dir, '/srv/x', 'x')]);
    expect(codes(results)).toEqual(['TARGET_NOT_FOUND']);
    expect(kindOf(results[0])).toBe('permanent');
    expect(results[0]).toMatchObject({ error: { message: expect.stringContaining('stevedore-no-such-container') } });
  });

  it('classifies a stopped container as down, and lands once it runs again', async () => {
    const dir = await tempDir();
    const other = await runtime.create('sd-stop');
    onTestFinished(() => runtime.remove(other));
    const stopped = createTarget('stopped', runtime.target(other));
    await runtime.stop(other);
    const results = await push(stopped, [await put(dir, '/srv/x', 'x')]);
    expect(codes(results)).toEqual(['TARGET_DOWN']);
    expect(kindOf(results[0])).toBe('down');
    await runtime.start(other);
    expect(codes(await push(stopped, [await put(dir, '/srv/x', 'x')]))).toEqual(['ok']);
  });

  it('classifies a daemon socket that is not there as down', async () => {
    const dir = await tempDir();
    setEnv(noDaemon[runtime.name] ?? {});
    const results = await push(createTarget('t', runtime.target(container)), [await put(dir, '/srv/x', 'x')]);
    expect(codes(results)).toEqual(['TARGET_DOWN']);
  });

  // Podman has no daemon: each user has containers of his own.
  if (runtime.daemon) it('classifies a daemon socket the user may not open as permission denied (permanent)', async () => {
    const dir = await tempDir();
    const home = await tempDir();
    await chmod(home, 0o777);
    await countCalls(runtime.command, { through: `setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=${home}` });
    const results = await push(createTarget('t', runtime.target(container)), [await put(dir, '/srv/x', 'x')]);
    expect(codes(results)).toEqual(['PERMISSION_DENIED']);
    expect(results[0]).toMatchObject({ error: { message: expect.stringContaining('no permission to use the daemon socket') } });
  });

  // The CLI connected and its request waits on a frozen daemon, which is then killed: what
  // the CLI prints (`read: connection reset by peer`, or `connection refused` when it tries
  // again; by hand, LXD also printed `Post …": EOF` and `write: broken pipe`) is the daemon down, not an
  // I/O error that spends attempts.
  if (runtime.daemon) it('classifies a daemon killed while the CLI waits on it as down: in an exec, and in Incus\'s and LXD\'s own file push', async () => {
    const daemon = runtime.daemon as Daemon;
    const dir = await tempDir();
    const freezeOn = path.join(dir, 'freeze-on');
    // The wrapper freezes the daemon as the CLI is called for `exec`, or for `file` (a push past 64 MiB, after an exec).
    await countCalls(runtime.command, { before: `[ "$1" = "$(cat '${freezeOn}')" ] && pkill -STOP -x ${daemon.process}` });
    onTestFinished(async () => {
      await daemon.thaw().catch(() => undefined); // none left to thaw once killed
      await daemon.start();
      await sh('rm -rf /srv/killed');
    });
    const cases: [string, PutItem][] = [['exec', await put(dir, '/srv/killed/small', 'x')]];
    if (runtime.name === 'incus' || runtime.name === 'lxd') cases.push(['file', await put(dir, '/srv/killed/big', Buffer.alloc(70 << 20, 1))]);
    for (const [call, item] of cases) {
      await writeFile(freezeOn, call);
      const pushing = push(createTarget('t', runtime.target(container)), [item]);
      await waitFor(async () => (await daemon.waiting()) > 0, { timeoutMs: 30_000, what: `the ${call} call waiting on the frozen daemon` });
      await daemon.kill();
      const results = await pushing;
      await writeFile(freezeOn, '');
      await daemon.start();
      await runtime.start(container).catch(() => undefined); // Docker's containers stop with their daemon
      expect(codes(results), JSON.stringify(results)).toEqual(['TARGET_DOWN']);
      expect(results[0]).toMatchObject({ error: { message: expect.stringContaining('the daemon ') } });
    }
  });

  if (runtime.name === 'incus' || runtime.name === 'lxd') {
    it('reaches a container as remote:name and inside a project; an unknown project or remote is permanent', async () => {
      const dir = await tempDir();
      const cli = (...args: string[]) => execa(runtime.command, args, { stdin: 'ignore' });
      const project = `sdp-${container.slice(-8)}`;
      // Images and profiles come from the default project, so the busybox image is there.
      await cli('project', 'create', project, '-c', 'features.images=false', '-c', 'features.profiles=false');
      onTestFinished(async () => {
        await cli('delete', '-f', '--project', project, 'inproject');
        await cli('project', 'delete', project);
      });
      await cli('launch', '-q', '--project', project, 'local/busybox', 'inproject');
      const inProject = createTarget('p', { runtime: runtime.name, container: 'local:inproject', project });
      expect(codes(await push(inProject, [await put(dir, '/srv/p.txt', 'in a project')]))).toEqual(['ok']);
      expect((await cli('exec', '--project', project, 'inproject', '--', 'cat', '/srv/p.txt')).stdout).toBe('in a project');
      const wrong = [
        createTarget('a', { runtime: runtime.name, container, project: 'stevedore-no-such-project' }),
        createTarget('b', { runtime: runtime.name, container: `stevedore-no-such-remote:${container}` }),
      ];
      for (const target of wrong) expect(codes(await push(target, [await put(dir, '/srv/x', 'x')]))).toEqual(['TARGET_NOT_FOUND']);
    });
  }
});
