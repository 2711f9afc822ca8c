// The conformance cases for a kind with a container runtime behind it: its staging
// script, its CLI (calls, arguments, timeouts), its containers (no tar, no sh, missing,
// stopped, exec hooks) and its daemon. conformance.test.ts registers them in each such
// kind's block, on the container it made.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { expect, it, onTestFinished } from 'vitest';
import { converse } from '../../src/targets/container/cli.js';
import { dockerRuntime } from '../../src/targets/container/docker.js';
import { incusRuntime } from '../../src/targets/container/incus.js';
import { parseReport, planBatch, scriptArgs } from '../../src/targets/container/plan.js';
import { createTarget } from '../../src/targets/index.js';
import type { PutItem, Target } from '../../src/targets/target.js';
import { tempDir } from '../helpers/temp.js';
import { waitFor } from '../helpers/wait.js';
import type { Capabilities } from './kinds.js';
import { captureLogs, codes, countCalls, kindOf, outsideUntouched, plantLinks, push, put, setEnv, sha, told } from './pushing.js';
import { NOTAR_IMAGE, type RuntimeUnderTest } from './runtimes.js';

const BATCH = await readFile(new URL('../../src/targets/container/batch.sh', import.meta.url), 'utf8');

// Environment that points each CLI at a daemon socket that does not exist.
const noDaemon: Record<string, Record<string, string>> = {
  incus: { INCUS_DIR: '/nonexistent-stevedore' },
  lxd: { LXD_DIR: '/nonexistent-stevedore' },
  docker: { DOCKER_HOST: 'unix:///nonexistent-stevedore.sock' },
  podman: { CONTAINER_HOST: 'unix:///nonexistent-stevedore.sock' },
};

export interface RuntimeCases {
  runtime: RuntimeUnderTest;
  can: Capabilities;
  /** The kind's container and its target, made before the cases run. */
  place(): string;
  target(): Target;
}

export function runtimeCases(context: RuntimeCases): void {
  stagingCases(context);
  cliCases(context);
  containerCases(context);
  daemonCases(context);
}

function stagingCases({ runtime, can, place, target }: RuntimeCases): void {
  const sh = (script: string, ...args: string[]) => runtime.sh(place(), script, ...args);

  it.runIf(can.batchScript)('checks its staging directory again before chown and rename: one swapped for a symlink meanwhile is refused, nothing moved or chowned through it', async () => {
    await sh('mkdir -p /srv/swap/d /secret && echo s > /secret/key && chmod 600 /secret/key');
    const plan = planBatch([], [{ op: 'put', id: 'x', source: '/dev/null', dest: '/srv/swap/d/f', bytes: 0, mode: 0o644, dirMode: 0o755, owner: { uid: 33, gid: 44 }, root: '/srv/swap' }]);
    const cli = runtime.name === 'incus' || runtime.name === 'lxd' ? incusRuntime({ runtime: runtime.name, container: place() }) : dockerRuntime({ runtime: runtime.name, container: place() });
    // What a user who owns /srv/swap/d could do while the runtime's copy runs:
    const swap = async () => {
      await sh('cd /srv/swap/d && mv .stevedore-T1 old && ln -s /secret .stevedore-T1 && echo x > /secret/f');
      return 'commit';
    };
    const call = cli.exec(['sh', '-c', BATCH, 'stevedore', ...scriptArgs(plan, 'copy', 'T1', true)]);
    const { stdout } = await converse(cli, call, AbortSignal.timeout(30_000), { ready: 'c - copy', answer: swap });
    expect(parseReport(stdout).puts.get(0)).toMatchObject({ status: 'unsafe' });
    expect(await sh('ls -A /srv/swap/d; ls -A /secret; stat -c "%u:%g %a" /secret/key /secret/f')).toBe('.stevedore-T1\nold\nf\nkey\n0:0 600\n0:0 644');
  });

  // Names are an uploader's: one with a newline must not add a line of its own to the report.
  it.runIf(can.batchScript)('keeps a name with a newline on its report line: it cannot report another file of the batch landed', async () => {
    const dir = await tempDir();
    const forged = '/srv/inject/nl/x\np 0 ok';
    await sh('mkdir -p "$1" "$2"', '/srv/inject/a/d', forged);
    const results = await push(target(), [await put(dir, '/srv/inject/a/d', 'victim'), await put(dir, forged, 'x')]);
    expect(codes(results)).toEqual(['DEST_IS_DIR', 'DEST_IS_DIR']);
  });

  it.runIf(can.copyFallback)('without tar in the container, falls back to the runtime\'s own copy, says so once, and still lands atomically with owner and mode', async () => {
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

  it.runIf(can.exec)('runs exec after a batch lands, once; a failing exec is a warning on each landed task, not a failure', async () => {
    const dir = await tempDir();
    const exec = ['sh', '-c', 'echo "$(ls /srv/hooked | wc -l)" >> /tmp/hook.log'];
    const items = await Promise.all([1, 2, 3].map((i) => put(dir, `/srv/hooked/f${i}`, `${i}`, { exec })));
    const results = await push(target(), items);
    expect(results).toEqual([{ ok: true }, { ok: true }, { ok: true }]);
    expect(await sh('cat /tmp/hook.log')).toBe('3');
    const failing = await push(target(), [await put(dir, '/srv/hooked/f4', '4', { exec: ['sh', '-c', 'echo nope >&2; exit 3'] })]);
    expect(failing[0]).toMatchObject({ ok: true, warning: { code: 'EXEC_FAILED', message: expect.stringContaining('nope') } });
    expect(await sh('cat /srv/hooked/f4')).toBe('4');
  });
}

function cliCases({ runtime, place, target }: RuntimeCases): void {
  const sh = (script: string, ...args: string[]) => runtime.sh(place(), script, ...args);

  it('lands many files with one CLI call after the first probe, not one per file', async () => {
    const dir = await tempDir();
    const log = await countCalls(runtime.command);
    const fresh = createTarget('t', runtime.target(place()));
    const items = await Promise.all(Array.from({ length: 200 }, (_, i) => put(dir, `/srv/calls/f${i}`, `${i}`)));
    expect(codes(await push(fresh, items)).every((c) => c === 'ok')).toBe(true);
    expect(codes(await push(fresh, [await put(dir, '/srv/calls/again', 'x')]))).toEqual(['ok']);
    expect((await readFile(log, 'utf8')).trim().split('\n')).toEqual(['exec', 'exec', 'exec']); // probe, batch, batch
    expect(await sh('ls /srv/calls | wc -l')).toBe('201');
  });

  it('kills a push that outlives its timeout and leaves nothing half-written', async () => {
    const dir = await tempDir();
    const big = await put(dir, '/srv/slow/big.bin', Buffer.alloc(256 << 20, 1));
    const results = await push(target(), [big], 150);
    expect(codes(results)).toEqual(['PUSH_TIMEOUT']);
    expect(kindOf(results[0])).toBe('transient');
    expect(await sh('ls /srv/slow/big.bin 2>&1 || true')).toContain('No such file');
    // The unpacking side ends on its own once its input is cut; its staging goes with it.
    await waitFor(async () => (await sh('find /srv/slow -name ".stevedore-*" | wc -l')) === '0', { timeoutMs: 20_000, what: 'no staging left' });
  });

  it('runs its CLI with an argument array, never a shell: metacharacters in a container name stay characters', async () => {
    const dir = await tempDir();
    const marker = path.join(dir, 'pwned');
    const hostile = createTarget('hostile', runtime.target(`x;touch ${marker};$(touch ${marker})`));
    const results = await push(hostile, [await put(dir, '/srv/x', 'x')]);
    expect(results[0]?.ok).toBe(false);
    expect(existsSync(marker)).toBe(false);
  });

  it('classifies a daemon socket that is not there as down', async () => {
    const dir = await tempDir();
    setEnv(noDaemon[runtime.name] ?? {});
    const results = await push(createTarget('t', runtime.target(place())), [await put(dir, '/srv/x', 'x')]);
    expect(codes(results)).toEqual(['TARGET_DOWN']);
  });
}

function containerCases({ runtime, can, place }: RuntimeCases): void {
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

  // `docker exec` runs as the image's USER unless told otherwise (Incus and LXD run as root).
  it.runIf(runtime.name === 'docker' || runtime.name === 'podman')('lands with the configured owner and mode in a container whose image runs as another user, with tar and without', async () => {
    const dir = await tempDir();
    for (const image of ['local/busybox', NOTAR_IMAGE]) {
      const user = `sd-user-${randomBytes(4).toString('hex')}`;
      await execa(runtime.command, ['run', '-d', '--name', user, '--user', '1000:1000', '--network', 'none', image, 'sleep', '1d']);
      onTestFinished(() => runtime.remove(user));
      const results = await push(createTarget('user', runtime.target(user)), [await put(dir, '/srv/user/x.txt', 'x', { owner: { uid: 33, gid: 44 }, mode: 0o640 })]);
      expect(told(results)).toBe('ok');
      const seen = await execa(runtime.command, ['exec', '--user', '0', user, 'sh', '-c', 'cat /srv/user/x.txt; echo; stat -c "%u:%g %a" /srv/user/x.txt']);
      expect(seen.stdout).toBe('x\n33:44 640');
    }
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

  // Docker's cp writes where dockerd sees the container's filesystem, which has no tmpfs
  // mounted in the container: the file goes again by exec there.
  it('lands a file past 64 MiB in a filesystem mounted in the container, and one that does not fit is full, leaving nothing', async () => {
    const dir = await tempDir();
    const mounted = await runtime.createWithSmallDisk('sd-mnt', '/mnt/small', '100m');
    onTestFinished(() => runtime.remove(mounted));
    const into = createTarget('mnt', runtime.target(mounted));
    const data = Buffer.alloc(70 << 20, 3);
    expect(codes(await push(into, [await put(dir, '/mnt/small/big.bin', data, { owner: { uid: 5, gid: 6 }, mode: 0o600 })]))).toEqual(['ok']);
    expect(codes(await push(into, [await put(dir, '/mnt/small/again.bin', data)]))).toEqual(['TARGET_FULL']);
    expect(await runtime.sh(mounted, 'sha256sum /mnt/small/big.bin | cut -c1-64; stat -c "%u:%g %a" /mnt/small/big.bin; ls -A /mnt/small'))
      .toBe(`${sha(data)}\n5:6 600\nbig.bin`);
  });

  it.runIf(can.projects)('reaches a container as remote:name and inside a project; an unknown project or remote is permanent', async () => {
    const dir = await tempDir();
    const container = place();
    const cli = (...args: string[]) => execa(runtime.command, args, { stdin: 'ignore' });
    const project = `sdp-${container.slice(-8)}`;
    // A kind that can reach projects is Incus or LXD.
    const inProject = (name: string, projectName: string) => createTarget('p', { runtime: runtime.name as 'incus' | 'lxd', container: name, project: projectName });
    // Images and profiles come from the default project, so the busybox image is there.
    await cli('project', 'create', project, '-c', 'features.images=false', '-c', 'features.profiles=false');
    onTestFinished(async () => {
      await cli('delete', '-f', '--project', project, 'inproject');
      await cli('project', 'delete', project);
    });
    await cli('launch', '-q', '--project', project, 'local/busybox', 'inproject');
    expect(codes(await push(inProject('local:inproject', project), [await put(dir, '/srv/p.txt', 'in a project')]))).toEqual(['ok']);
    expect((await cli('exec', '--project', project, 'inproject', '--', 'cat', '/srv/p.txt')).stdout).toBe('in a project');
    const wrong = [
      inProject(container, 'stevedore-no-such-project'),
      createTarget('b', { runtime: runtime.name, container: `stevedore-no-such-remote:${container}` }),
    ];
    for (const target of wrong) expect(codes(await push(target, [await put(dir, '/srv/x', 'x')]))).toEqual(['TARGET_NOT_FOUND']);
  });
}

function daemonCases({ runtime, can, place }: RuntimeCases): void {
  const { daemon } = runtime;
  // Podman has no daemon: each user has containers of his own.
  if (!daemon) return;

  it('classifies a daemon socket the user may not open as permission denied (permanent)', async () => {
    const dir = await tempDir();
    const home = await tempDir();
    await chmod(home, 0o777);
    await countCalls(runtime.command, { through: `setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=${home}` });
    const results = await push(createTarget('t', runtime.target(place())), [await put(dir, '/srv/x', 'x')]);
    expect(codes(results)).toEqual(['PERMISSION_DENIED']);
    expect(results[0]).toMatchObject({ error: { message: expect.stringContaining('no permission to use the daemon socket') } });
  });

  // The CLI connected and its request waits on a frozen daemon, which is then killed: what
  // the CLI prints (`read: connection reset by peer`, or `connection refused` when it tries
  // again; by hand, LXD also printed `Post …": EOF` and `write: broken pipe`) is the daemon down, not an
  // I/O error that spends attempts.
  it('classifies a daemon killed while the CLI waits on it as down: in an exec, and in the runtime\'s own copy of a large file', async () => {
    const dir = await tempDir();
    const freezeOn = path.join(dir, 'freeze-on');
    const frozen = path.join(dir, 'frozen');
    // The wrapper freezes the daemon as the CLI is called for `exec`, or for `file` / `cp` (a push past 64 MiB, after an exec),
    // and says so: a connection of an earlier call briefly in the accept queue is not the one to wait for.
    await countCalls(runtime.command, { before: `[ "$1" = "$(cat '${freezeOn}')" ] && pkill -STOP -x ${daemon.process} && touch '${frozen}'` });
    onTestFinished(async () => {
      await daemon.thaw().catch(() => undefined); // none left to thaw once killed
      await daemon.start();
      await runtime.sh(place(), 'rm -rf /srv/killed');
    });
    const cases: [string, PutItem][] = [['exec', await put(dir, '/srv/killed/small', 'x')]];
    if (can.filePush) cases.push([can.filePush, await put(dir, '/srv/killed/big', Buffer.alloc(70 << 20, 1))]);
    for (const [call, item] of cases) {
      await writeFile(freezeOn, call);
      const pushing = push(createTarget('t', runtime.target(place())), [item]);
      await waitFor(async () => existsSync(frozen) && (await daemon.waiting()) > 0, { timeoutMs: 30_000, what: `the ${call} call waiting on the frozen daemon` });
      await daemon.kill();
      const results = await pushing;
      await writeFile(freezeOn, '');
      await rm(frozen);
      await daemon.start();
      await runtime.start(place()).catch(() => undefined); // Docker's containers stop with their daemon
      expect(codes(results), told(results)).toEqual(['TARGET_DOWN']);
      expect(results[0]).toMatchObject({ error: { message: expect.stringContaining('the daemon ') } });
    }
  });
}
