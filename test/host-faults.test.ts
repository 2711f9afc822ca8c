// Host faults, for real: state_dir on a small tmpfs that fills up. Uploads get 507 once
// min_free would be crossed (and when the disk really is full), the agent keeps serving,
// nothing accepted is lost, and once the spool drains new uploads succeed again. A
// watched folder on that same disk: its files wait in the folder while there is no
// room, and all land once there is. A `stevedore run` process whose open-files limit
// is small, under more connections than it has descriptors.
import { execFile } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { appendFile, link, mkdir, mkdtemp, readFile, readdir, rename, rm, statfs, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it, onTestFinished } from 'vitest';
import { stringify } from 'yaml';
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { errnoCode, isStevedoreError, type StevedoreError } from '../src/errors.js';
import { createIntake } from '../src/ingest/intake.js';
import { createLogger } from '../src/log.js';
import { openFilesLimit } from '../src/open-files.js';
import { createRegistry } from '../src/queue/registry.js';
import { createScheduler } from '../src/queue/scheduler.js';
import { createJournal } from '../src/spool/journal.js';
import { createSpool } from '../src/spool/spool.js';
import { createStateDir } from '../src/spool/state-dir.js';
import { createContainerTarget } from '../src/targets/container/container.js';
import type { Runtime } from '../src/targets/container/runtime.js';
import { createStagingLedger, type StagingLedger } from '../src/targets/ledger.js';
import { createLocalTarget } from '../src/targets/local.js';
import { failureKind, pushItems, type PutItem, type Target } from '../src/targets/target.js';
import { startAgent, type TestAgent } from './helpers/agent.js';
import { start, useBuiltCli } from './helpers/cli.js';
import { expectError, freePort, json, open, send, type Answer } from './helpers/http.js';
import { gatedTarget } from './helpers/targets.js';
import { tempDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

const run = promisify(execFile);
// Mounting needs root: CI runs as root, and there this suite must run.
const root = process.getuid?.() === 0;

async function smallDisk(dir: string, size: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await run('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir]);
  onTestFinished(async () => {
    await run('umount', ['-l', dir]);
  });
}

const MiB = 2 ** 20;
const freeOn = async (dir: string) => {
  const { bavail, bsize } = await statfs(dir);
  return bavail * bsize;
};
/** Grows `file` until the disk refuses another byte (ENOSPC). */
async function fillUp(file: string): Promise<void> {
  for (const chunk of [MiB, 4096, 1]) {
    try {
      for (;;) await appendFile(file, Buffer.alloc(chunk));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
    }
  }
}
const get = (t: TestAgent, what: string) => send(t.url, what, { method: 'GET' });
const logged = (t: TestAgent, start: string) => t.logs.filter((line) => String(line.msg).startsWith(start));

describe.runIf(root || process.env.CI === 'true')('bytes admitted but not yet written', () => {
  it('count against min_free until they are on disk, and then only once', async () => {
    const disk = path.join(await tempDir(), 'disk');
    await smallDisk(disk, '16m');
    const logger = createLogger({ level: 'silent', format: 'json' });
    const spool = createSpool(path.join(disk, 'spool'));
    await spool.init();
    const journal = createJournal({ file: path.join(disk, 'journal.log'), syncDirs: [spool.dir], logger });
    await journal.open();
    onTestFinished(() => journal.close());
    const scheduler = createScheduler({
      concurrency: 1, perTarget: 1, capacity: 10, batchFiles: 10, batchBytes: MiB, logger, registry: createRegistry({ logger }),
      getTarget: () => undefined, sourcePath: (task) => spool.path(task.staged), settle: async () => undefined,
    });
    const stateDir = createStateDir({ dir: disk, subdirs: [spool.dir], journal, logger });
    const intake = createIntake({ spool, journal, stateDir, scheduler, minFree: 4 * MiB, isClosing: () => false });
    const free = await freeOn(disk);
    const refused = (bytes: number) => intake.admit(1, bytes).then(() => false, (error: unknown) => isStevedoreError(error, 'INSUFFICIENT_STORAGE'));

    const big = await intake.admit(1, free - 8 * MiB); // 8 MiB left above nothing, 4 above min_free
    expect(await refused(5 * MiB)).toBe(true); // fits the disk alone, not beside what big will write
    await writeFile(path.join(spool.dir, 'big.part'), Buffer.alloc(6 * MiB));
    big.written(6 * MiB); // 6 MiB now counted by the disk: held no more
    const small = await intake.admit(1, 3 * MiB); // counted twice, this would be refused
    small.done();
    big.done();
    big.done(); // idempotent
    expect(await refused(free - 6 * MiB - 4 * MiB - 64 * 1024)).toBe(false); // nothing held any more
  });
});

describe.runIf(root || process.env.CI === 'true')('a full spool disk', () => {
  it('answers 507 past min_free and when the disk is really full, keeps serving, loses nothing, and takes uploads again once the spool drains', async () => {
    const dir = await tempDir();
    await smallDisk(path.join(dir, 'state'), '24m');
    const gate = gatedTarget(); // pushes wait: the spool fills
    const t = await startAgent({ dir, minFree: '8MiB', createTarget: gate.createTarget, queue: 'capacity: 1000' });
    const accepted: string[] = [];
    let refused = 0;
    for (let i = 0; i < 40 && refused === 0; i += 1) {
      const answer = await send(t.url, `/drop/files/f${i}.bin`, { body: Buffer.alloc(1 << 20, i).toString('latin1'), headers: { 'content-type': 'application/octet-stream' } });
      if (answer.status === 202) accepted.push(`f${i}.bin`);
      else {
        expect(answer.status).toBe(507);
        expect(json<{ error: { code: string } }>(answer).error.code).toBe('INSUFFICIENT_STORAGE');
        refused += 1;
      }
    }
    expect(accepted.length).toBeGreaterThan(5);
    expect(refused).toBe(1);
    expect((await send(t.url, '/healthz', { method: 'GET' })).status).toBe(200);

    // Length unknown (chunked): min_free cannot refuse it up front, the disk fills under it.
    const chunked = open(t.url, '/drop/files/too-big.bin', { headers: { 'transfer-encoding': 'chunked' } });
    for (let i = 0; i < 32 && !chunked.req.destroyed; i += 1) chunked.req.write(Buffer.alloc(1 << 20, 7));
    chunked.req.end();
    const answer = await chunked.answer.catch(() => undefined);
    chunked.req.destroy();
    if (answer) expect(answer.status).toBe(507); // the agent may also just close the connection
    const staged = await readdir(path.join(dir, 'state/spool'));
    expect(staged).toHaveLength(accepted.length); // the cut body's file is gone, the accepted ones stay

    gate.open();
    await waitFor(async () => (await readdir(path.join(dir, 'state/spool'))).length === 0, { timeoutMs: 20_000, what: 'the spool to drain' });
    const wrong = [];
    for (const [i, name] of accepted.entries()) {
      const landed = await readFile(path.join(t.root, 'srv/files', name)).catch(() => Buffer.alloc(0));
      if (!landed.equals(Buffer.alloc(1 << 20, i))) wrong.push(`${name}: ${landed.length} bytes`);
    }
    expect(wrong).toEqual([]);
    expect((await send(t.url, '/drop/files/after.bin', { body: 'room again' })).status).toBe(202);
    expect((await send(t.url, '/readyz', { method: 'GET' })).status).toBe(200);
    await t.close(); // before the disk goes away
  });
});

describe.runIf(root || process.env.CI === 'true')('a watched folder on the same full disk', () => {
  // Staging a watched file is always a copy into the spool, never a hard link, even on
  // the spool's own disk (a writer may still change the file in place): every file
  // dropped here needs its size again in free space before it can be staged.
  it('keeps files in the folder while there is no room (said once), never crosses min_free by staging, and lands every file once space frees', async () => {
    const dir = await tempDir();
    const disk = path.join(dir, 'disk');
    await smallDisk(disk, '24m');
    const drop = path.join(disk, 'drop');
    const spool = path.join(disk, 'state/spool');
    const filler = path.join(disk, 'filler');
    await mkdir(drop);
    const gate = gatedTarget(); // pushes wait: the spool fills, nothing drains
    const watch = { name: 'in', path: drop, target: 'box', dest: '/srv/in', settle: '100ms' };
    const t = await startAgent({ dir, stateDir: path.join(disk, 'state'), minFree: '4MiB', createTarget: gate.createTarget, queue: 'per_target: 1', extra: stringify({ watch: [watch] }) });
    const expected = new Map<string, Buffer>();
    const spooled = async () => (await readdir(spool)).length;

    // With room: an upload takes the one push slot and waits at the gate; 250 small
    // drops are staged behind it.
    expect((await send(t.url, '/drop/files/first.txt', { body: 'first' })).status).toBe(202);
    for (let i = 0; i < 250; i += 1) {
      expected.set(`s${i}.txt`, Buffer.alloc(4096, i));
      await writeFile(path.join(drop, `s${i}.txt`), Buffer.alloc(4096, i));
    }
    await waitFor(async () => (await spooled()) === 251, { timeoutMs: 15_000, what: 'the small drops to be staged' });

    // Near min_free: twelve 1 MiB files arrive at once (written as *.part, renamed in)
    // when only 2.5 MiB are left above min_free. Before, each was admitted alone on the
    // same free figure and their copies together ran the disk full (ENOSPC).
    for (let i = 0; i < 12; i += 1) await writeFile(path.join(drop, `b${i}.bin.part`), Buffer.alloc(MiB, 100 + i));
    await writeFile(filler, Buffer.alloc((await freeOn(disk)) - 6.5 * MiB));
    await Promise.all(Array.from({ length: 12 }, (_, i) => rename(path.join(drop, `b${i}.bin.part`), path.join(drop, `b${i}.bin`))));
    for (let i = 0; i < 12; i += 1) expected.set(`b${i}.bin`, Buffer.alloc(MiB, 100 + i));
    const status = async () => json<{ watches: { pending: number }[]; spool: { files: number; free_bytes: number } }>(await get(t, '/status'));
    const waitingForRoom = async () => logged(t, 'no room in the spool').length > 0 && (await status()).watches[0]?.pending === 12 - ((await spooled()) - 251);
    await waitFor(waitingForRoom, { timeoutMs: 10_000, what: 'the big files to wait for room' });
    const bigStaged = (await spooled()) - 251;
    const freeAtStop = await freeOn(disk);
    expect(bigStaged).toBeGreaterThanOrEqual(1);
    expect(freeAtStop).toBeGreaterThanOrEqual(4 * MiB); // staging stopped at min_free, not at a full disk
    expect(logged(t, 'could not stage a watched file')).toEqual([]);
    expect(logged(t, 'no room in the spool for watched files')).toHaveLength(1);
    expect((await get(t, '/readyz')).status).toBe(200); // small uploads still fit

    // Really full: the agent still serves, says why it is not ready, refuses uploads.
    await fillUp(filler);
    expect((await get(t, '/healthz')).status).toBe(200);
    const readyz = await get(t, '/readyz');
    expect(readyz.status).toBe(503);
    expect(json<{ problems: string[] }>(readyz).problems).toEqual([expect.stringMatching(/^the spool's disk would drop below min_free of 4194304 bytes \(\d+ bytes free\)$/)]);
    expect((await status()).spool).toMatchObject({ files: 251 + bigStaged, free_bytes: expect.any(Number) });
    await waitFor(async () => (await status()).watches[0]?.pending === 12 - bigStaged, { what: `/status to count ${12 - bigStaged} files waiting` });
    expect((await send(t.url, '/drop/files/refused.bin', { body: 'no room' })).status).toBe(507);

    // The target comes back while the disk is still full: pushes land, but their end
    // cannot be journaled. Before, such tasks stayed half-settled until a restart: staged,
    // their drop files kept, even after space came back. Every staged and dropped file is
    // pinned by a link of the test's own first, so that the ends that still fit in the
    // journal's last page give no space back when their files are removed: on a busy
    // machine, ends that came in small groups had freed room for the next ones until all
    // were through, and the journal never refused (once on CI, once beside CPU hogs).
    const pins = path.join(disk, 'pins');
    await mkdir(pins);
    const pin = (from: string, name: string) => link(path.join(from, name), path.join(pins, `${path.basename(from)}-${name}`)).catch((error: unknown) => {
      if (errnoCode(error) !== 'ENOENT') throw error; // a name that went meanwhile
    });
    for (const name of await readdir(spool)) await pin(spool, name);
    for (const name of await readdir(drop)) await pin(drop, name);
    await fillUp(filler);
    gate.open();
    await waitFor(async () => (await readdir(path.join(t.root, 'srv/in')).catch(() => [])).length >= 250 + bigStaged, { timeoutMs: 15_000, what: 'the staged files to land' });
    const refused = () => logged(t, 'cannot record the end of finished tasks').length + logged(t, 'settling a task failed').length > 0;
    await waitFor(refused, { what: 'the journal to refuse the ends' });
    expect(logged(t, 'settling a task failed')).toEqual([]); // given up on, before: left half-settled
    await rm(pins, { recursive: true });
    const freedAt = Date.now();
    await rm(filler);
    await waitFor(async () => (await readdir(drop)).length === 0 && (await spooled()) === 0, { timeoutMs: 40_000, what: 'the folder and the spool to empty' });
    const drained = Date.now() - freedAt;

    const wrong: string[] = [];
    for (const [name, content] of expected) {
      const landed = await readFile(path.join(t.root, 'srv/in', name)).catch(() => Buffer.alloc(0));
      if (!landed.equals(content)) wrong.push(`${name}: ${landed.length} bytes`);
    }
    expect(wrong).toEqual([]);
    expect(await readFile(path.join(t.root, 'srv/files/first.txt'), 'utf8')).toBe('first');
    expect((await get(t, '/readyz')).status).toBe(200);
    // Each wait said once when it starts and once when it ends (at the margin, room can
    // come and go more than once), not once per file or retry.
    const waits = { room: logged(t, 'no room in the spool for watched files').length, ends: logged(t, 'cannot record the end of finished tasks').length };
    expect(logged(t, 'no watched file waits for room in the spool any more')).toHaveLength(waits.room);
    expect(logged(t, 'recorded the end of the tasks that waited')).toHaveLength(waits.ends);
    expect(waits.room + waits.ends).toBeLessThanOrEqual(6);
    expect(logged(t, 'settling a task failed')).toEqual([]);
    // eslint-disable-next-line no-console -- each fault test prints what it tried and what happened
    console.log(
      `watch on a full disk: ${expected.size} files dropped (250 × 4 KiB, 12 × 1 MiB); ${bigStaged} of the 1 MiB ones staged before min_free (${(freeAtStop / MiB).toFixed(1)} MiB free, min_free 4 MiB), ` +
        `${12 - bigStaged} waited in the folder; full disk: /healthz 200, /readyz 503, upload 507; ends not journaled while full: waited, recorded later; waits logged ${waits.room}× (room) and ${waits.ends}× (journal), each with its end; ` +
        `${expected.size} landed intact ${drained} ms after the space freed, 0 left in the spool or the folder`,
    );
    await t.close(); // before the disk goes away
  }, 90_000);
});

describe.runIf(existsSync('/usr/bin/prlimit') || process.env.CI === 'true')('file descriptors near their limit', () => {
  useBuiltCli();
  const LIMIT = 160; // node itself needs ~120 to load the agent's modules at start

  it('answers what it reads with 202 or a JSON 503, says which limit and how to raise it, lands every 202, and serves normally once the load passes', async () => {
    const dir = await tempDir();
    const drop = path.join(dir, 'drop');
    await mkdir(drop);
    // The target on another filesystem than the spool: each push copies (and needs
    // descriptors) instead of making a hard link.
    const box = existsSync('/dev/shm') ? await mkdtemp('/dev/shm/stevedore-box-') : path.join(dir, 'box');
    onTestFinished(() => rm(box, { recursive: true, force: true }));
    const port = await freePort();
    const file = path.join(dir, 'stevedore.yaml');
    await writeFile(
      file,
      `version: 1
state_dir: ${path.join(dir, 'state')}
log: { level: info, format: json }
targets: { box: { runtime: local, root: ${box} } }
queue: { capacity: 5000 }
http:
  listen: 127.0.0.1:${port}
  idle_timeout: 5s
  min_free: 1MiB
  max_receiving: 1000 # the descriptors are under test here, not this bound (test/hostile/slow-bodies.test.ts)
  routes: [{ name: files, path: /drop/files, target: box, dest: /srv/files }]
watch: [{ name: in, path: ${drop}, target: box, dest: /srv/in, settle: 100ms }]
`,
    );
    const agent = start(['run', '-c', file], { wrap: ['prlimit', `--nofile=${LIMIT}:${LIMIT}`] });
    const logs: Record<string, unknown>[] = [];
    createInterface({ input: agent.stdout }).on('line', (line) => logs.push(JSON.parse(line) as Record<string, unknown>));
    let stderr = '';
    agent.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const url = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${url}/healthz`).catch(() => undefined))?.ok, { timeoutMs: 15_000, what: 'the agent to listen' });
    const limits = await readFile(`/proc/${agent.pid}/limits`, 'utf8');
    expect(limits).toMatch(new RegExp(`^Max open files\\s+${LIMIT}\\s+${LIMIT}`, 'm'));

    // More than it has descriptors: idle connections, a burst of uploads, drop files.
    const idle = await Promise.all(Array.from({ length: 40 }, () => openIdle(port)));
    const body = (i: number) => Buffer.alloc(16 * 1024, i % 251);
    const drops = Array.from({ length: 50 }, (_, i) => `d${i}.txt`);
    const upload = (i: number) => send(url, `/drop/files/u${i}.bin`, { body: body(i) }).catch((error: NodeJS.ErrnoException) => error.code ?? error.message);
    const wave = (from: number) => Promise.all(Array.from({ length: 200 }, (_, k) => upload(from + k)));
    const [first] = await Promise.all([wave(0), Promise.all(drops.map((name, i) => writeFile(path.join(drop, name), `drop ${i}`)))]);
    const answers = [...first, ...(await wave(200)), ...(await wave(400))];
    expect(agent.exitCode).toBeNull();
    idle.forEach((socket) => socket.destroy());

    const accepted: number[] = [];
    const refused: Answer[] = [];
    const unanswered: Record<string, number> = {};
    answers.forEach((answer, i) => {
      if (typeof answer === 'string') unanswered[answer] = (unanswered[answer] ?? 0) + 1;
      else if (answer.status === 202) accepted.push(i);
      else refused.push(answer);
    });
    // Everything it read got 202 or SPEC's JSON error; a connection past its cap is
    // closed unread (no answer at all, never a half one).
    for (const answer of refused) {
      expect({ status: answer.status, type: answer.headers['content-type'], retry: answer.headers['retry-after'] }).toEqual({ status: 503, type: 'application/json', retry: '2' });
      expect(json<{ error: { code: string } }>(answer).error.code).toBe('TOO_MANY_OPEN_FILES');
    }
    expect(Object.keys(unanswered).every((code) => ['ECONNRESET', 'EPIPE'].includes(code))).toBe(true);
    expect(accepted.length).toBeGreaterThan(0);
    expect(refused.length + Object.values(unanswered).reduce((a, b) => a + b, 0)).toBeGreaterThan(0); // the limit was reached
    const said = logs.filter((line) => String(line.msg).startsWith('out of file descriptors'));
    expect(said.length).toBeGreaterThanOrEqual(1);
    expect(said.length).toBeLessThanOrEqual(2); // once a minute at most, not once per failure
    expect(said[0]?.msg).toBe(`out of file descriptors: this agent's limit is ${LIMIT} open files (RLIMIT_NOFILE); raise it with LimitNOFILE= in the service unit, or ulimit -n before starting it`);

    // Once the load has passed: every 202 lands with its bytes, every drop file too,
    // nothing stays staged, and it serves as before.
    const landed = (rel: string) => readFile(path.join(box, 'srv', rel)).catch(() => undefined);
    await waitFor(async () => (await Promise.all(accepted.map((i) => landed(`files/u${i}.bin`)))).every((data, k) => data?.equals(body(accepted[k] as number))), { timeoutMs: 30_000, what: 'every accepted upload to land' });
    await waitFor(async () => (await Promise.all(drops.map((name) => landed(`in/${name}`)))).every((data, i) => data?.toString() === `drop ${i}`), { timeoutMs: 30_000, what: 'every drop file to land' });
    await waitFor(async () => (await readdir(path.join(dir, 'state/spool'))).length === 0 && (await readdir(drop)).length === 0, { timeoutMs: 10_000, what: 'the spool and the folder to empty' });
    expect(await readdir(path.join(dir, 'state/dead-letter'))).toEqual([]);
    const after = await Promise.all(Array.from({ length: 20 }, (_, i) => send(url, `/drop/files/after${i}.txt`, { body: `after ${i}` })));
    expect(after.map((a) => a.status)).toEqual(Array(20).fill(202));
    await waitFor(async () => (await send(url, '/readyz', { method: 'GET' })).status === 200, { timeoutMs: 35_000, what: '/readyz 200' });
    expect(logs.filter((line) => line.msg === 'settling a task failed' || line.level === 60)).toEqual([]);
    expect(agent.exitCode).toBeNull();
    agent.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => agent.once('close', (exit) => resolve(exit)));
    const retried = (code: string) => logs.filter((line) => line.msg === 'task retrying' && (line.error as { code?: string } | undefined)?.code === code);
    const pushesWaited = retried('TOO_MANY_OPEN_FILES').length;
    expect(retried('TARGET_IO')).toEqual([]); // out of descriptors never spends an attempt as an I/O error
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    // eslint-disable-next-line no-console -- each fault test prints what it tried and what happened
    console.log(
      `fds near the limit: RLIMIT_NOFILE ${LIMIT}; 40 idle connections, 3 waves of 200 concurrent uploads of 16 KiB, 50 drop files; ` +
        `${accepted.length} answered 202, ${refused.length} answered 503 TOO_MANY_OPEN_FILES, ${Object.entries(unanswered).map(([k, v]) => `${v} closed unread (${k})`).join(', ') || '0 closed unread'}; ` +
        `limit logged ${said.length}×; ${pushesWaited} push(es) waited for descriptors without spending an attempt; all ${accepted.length} accepted and 50 drop files landed intact, 0 dead-lettered, 0 staged left; the agent did not crash and took 20 of 20 uploads after`,
    );
  }, 120_000);
});

/** A connection that sends nothing (it holds one of the agent's descriptors until its idle timeout). */
function openIdle(port: number): Promise<Socket> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    socket.on('error', () => resolve(socket));
  });
}

// This test process with no descriptor left for the time of `work`: its soft
// RLIMIT_NOFILE lowered to what it has open plus a few, and those few taken.
async function withNoDescriptors<T>(work: () => Promise<T>): Promise<T> {
  const limit = openFilesLimit() ?? 1024;
  const open = (await readdir('/proc/self/fd')).length;
  await run('prlimit', [`--pid=${process.pid}`, `--nofile=${open + 16}:`]);
  const held: number[] = [];
  try {
    try {
      for (;;) held.push(openSync('/dev/null', 'r'));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EMFILE') throw error;
    }
    return await work();
  } finally {
    held.forEach((fd) => closeSync(fd));
    await run('prlimit', [`--pid=${process.pid}`, `--nofile=${limit}:`]);
  }
}

describe.runIf(existsSync('/usr/bin/prlimit') || process.env.CI === 'true')('a push that finds no file descriptor', () => {
  interface Scene {
    target: Target;
    item: PutItem;
    /** What else must hold once descriptors are back. */
    check?(): Promise<void>;
  }
  const never = new AbortController().signal;
  const body = 'staged bytes';
  // A staged file in `spool`, for /srv/a.txt in a local target rooted at `root`.
  async function localScene(base: string, { spool = path.join(base, 'spool'), dirThere = true, ledger }: { spool?: string; dirThere?: boolean; ledger?: StagingLedger } = {}) {
    const root = path.join(base, 'root');
    await mkdir(spool, { recursive: true });
    if (dirThere) await mkdir(path.join(root, 'srv'), { recursive: true });
    const source = path.join(spool, 'one.staged');
    await writeFile(source, body);
    const item: PutItem = { op: 'put', id: 'task-1', dest: '/srv/a.txt', source, bytes: body.length, mode: 0o644, dirMode: 0o755 };
    return { root, item, target: createLocalTarget({ name: 'box', root, ...(ledger ? { ledger } : {}) }) };
  }
  const scenes: [string, (base: string) => Promise<Scene>][] = [
    [
      "local: the fsync of the destination's directory (a hard link takes no descriptor)",
      async (base) => {
        const { root, item, target } = await localScene(base);
        // Landed, not yet durable: the retry makes it so.
        return { target, item, check: async () => expect(await readFile(path.join(root, 'srv/a.txt'), 'utf8')).toBe(body) };
      },
    ],
    [
      'local: a copy into another filesystem',
      async (base) => {
        const spool = await mkdtemp(existsSync('/dev/shm') ? '/dev/shm/stevedore-spool-' : path.join(base, 'spool-'));
        onTestFinished(() => rm(spool, { recursive: true, force: true }));
        const { root, item, target } = await localScene(base, { spool });
        return { target, item, check: async () => expect(await readdir(path.join(root, 'srv'))).toEqual([]) }; // no temp name left
      },
    ],
    ['local: a directory made on the way (opened to set its mode)', async (base) => localScene(base, { dirThere: false })],
    [
      'local: the sweep of the temp names an interrupted push left (and its staging notes)',
      async (base) => {
        const notes = path.join(base, 'notes');
        const root = path.join(base, 'root');
        await mkdir(path.join(root, 'srv'), { recursive: true });
        await mkdir(notes);
        await writeFile(path.join(notes, 'oldtag.json'), JSON.stringify({ target: 'box', where: root, dirs: ['/srv'] }));
        await writeFile(path.join(root, 'srv/.stevedore-oldtag-1.tmp'), 'half');
        const ledger = createStagingLedger(notes);
        await ledger.open();
        const scene = await localScene(base, { ledger });
        const check = async () => {
          // The directory could not be read: the note stays for the next push, which removes the temp name.
          expect(ledger.leftovers('box').map((note) => note.tag)).toEqual(['oldtag']);
          expect(await pushItems(scene.target, [scene.item], never)).toEqual([{ ok: true }]);
          expect(ledger.leftovers('box')).toEqual([]);
          expect(await readdir(path.join(root, 'srv'))).toEqual(['a.txt']);
        };
        return { ...scene, check };
      },
    ],
    [
      "container: spawning the runtime's CLI",
      async (base) => {
        const { item } = await localScene(base);
        const runtime: Runtime = { runtime: 'docker', command: 'sh', container: 'fake', failures: [], exec: (argv) => ['-c', 'cat >/dev/null', ...argv], pushFile: () => [], copySetsOwner: false };
        return { target: createContainerTarget('box', runtime), item };
      },
    ],
  ];

  it.each(scenes)('%s: TOO_MANY_OPEN_FILES, waited out without spending an attempt', async (_label, scene) => {
    const { target, item, check } = await scene(await tempDir());
    const [result] = await withNoDescriptors(() => pushItems(target, [item], never));
    expect(result).toMatchObject({ ok: false, error: { code: 'TOO_MANY_OPEN_FILES', message: expect.stringMatching(/EMFILE/) } });
    expect(failureKind((result as { error: StevedoreError }).error)).toBe('host');
    await check?.();
  });
});

describe.runIf(root || process.env.CI === 'true')('state_dir gone or read-only under a running agent', () => {
  type Undo = () => Promise<void>;
  // Each fault, and how it is undone; and what becomes of the files accepted before it.
  const faults: [string, (stateDir: string) => Promise<Undo>, 'land' | 'STAGED_MISSING'][] = [
    [
      'moved away, then back (as an unmount and a mount)',
      async (stateDir) => {
        await rename(stateDir, `${stateDir}.away`);
        return () => rename(`${stateDir}.away`, stateDir);
      },
      'land',
    ],
    [
      'read-only (a read-only mount over it), then writable again',
      async (stateDir) => {
        await run('mount', ['--bind', stateDir, stateDir]);
        await run('mount', ['-o', 'remount,bind,ro', stateDir]);
        let mounted = true;
        onTestFinished(async () => void (mounted && (await run('umount', ['-l', stateDir]))));
        return async () => {
          // The agent may hold a file open through the mount that moment (a push reading
          // a staged file, a probe of state_dir): umount then says "target is busy", and
          // is tried again, as an operator would.
          await waitFor(() => run('umount', [stateDir]).then(() => true, () => false), { timeoutMs: 15_000, intervalMs: 100, what: 'umount of the read-only mount' });
          mounted = false;
        };
      },
      'land',
    ],
    [
      // Its staged files are deleted with it: those tasks cannot land, and say so.
      'removed (rm -rf), then made again (mkdir)',
      async (stateDir) => {
        await rm(stateDir, { recursive: true });
        return () => mkdir(stateDir).then(() => undefined);
      },
      'STAGED_MISSING',
    ],
  ];

  it.each(faults)('%s: /readyz 503 naming it, uploads 503 SPOOL_UNAVAILABLE, files and task ends wait, all goes on once it is back', async (label, fault, before) => {
    const dir = await tempDir();
    const drop = path.join(dir, 'drop');
    await mkdir(drop);
    const gate = gatedTarget(); // pushes wait: the files accepted before are still staged when it goes
    const watch = { name: 'in', path: drop, target: 'box', dest: '/srv/in', settle: '100ms' };
    const t = await startAgent({ dir, createTarget: gate.createTarget, extra: stringify({ watch: [watch] }) });
    const body = (i: number) => `accepted before ${i}\n`.repeat(100);
    for (let i = 0; i < 5; i += 1) expect((await send(t.url, `/drop/files/b${i}.txt`, { body: body(i) })).status).toBe(202);

    const undo = await fault(t.stateDir);
    const readyz = await get(t, '/readyz');
    expect(readyz.status).toBe(503);
    expect(json<{ problems: string[] }>(readyz).problems).toEqual([expect.stringContaining(`state_dir ${t.stateDir} `)]);
    const refused = await send(t.url, '/drop/files/refused.txt', { body: 'meanwhile' });
    expect({ status: refused.status, type: refused.headers['content-type'], retry: refused.headers['retry-after'] }).toEqual({ status: 503, type: 'application/json', retry: '2' });
    expect(json<{ error: { code: string } }>(refused).error.code).toBe('SPOOL_UNAVAILABLE');
    expect((await get(t, '/healthz')).status).toBe(200);
    expect((await get(t, '/status')).status).toBe(200);
    await writeFile(path.join(drop, 'dropped.txt'), 'dropped meanwhile');
    await waitFor(() => logged(t, 'the spool cannot take watched files').length === 1, { what: 'the dropped file to wait' });
    gate.open(); // the pushes meet the fault: they wait, or land and wait to be recorded
    const waited = () => [...logged(t, 'task retrying'), ...logged(t, 'cannot record the end')].length > 0;
    await waitFor(waited, { what: 'the pushes to wait' });
    expect(logged(t, 'task failed')).toEqual([]);
    expect(await readdir(drop)).toEqual(['dropped.txt']);

    const outage = Date.now();
    await undo();
    await waitFor(async () => (await get(t, '/readyz')).status === 200, { timeoutMs: 15_000, what: '/readyz 200' });
    const back = Date.now() - outage;
    expect((await send(t.url, '/drop/files/after.txt', { body: 'after' })).status).toBe(202);
    const landed = (rel: string) => readFile(path.join(t.root, 'srv', rel), 'utf8').catch(() => undefined);
    await waitFor(async () => (await landed('in/dropped.txt')) === 'dropped meanwhile' && (await readdir(drop)).length === 0, { timeoutMs: 40_000, what: 'the dropped file to land' });
    await waitFor(async () => (await landed('files/after.txt')) === 'after', { timeoutMs: 40_000, what: 'the upload after to land' });
    const deadLetter = path.join(t.stateDir, 'dead-letter');
    if (before === 'land') {
      await waitFor(async () => (await Promise.all([0, 1, 2, 3, 4].map((i) => landed(`files/b${i}.txt`)))).every((text, i) => text === body(i)), { timeoutMs: 40_000, what: 'the files accepted before to land' });
      expect(await readdir(deadLetter)).toEqual([]);
    } else {
      // Written again from memory once state_dir was back: a crash now would not forget them.
      expect(logged(t, 'the journal was gone from its path')).toMatchObject([{ live: 5 }]);
      await waitFor(async () => (await readdir(deadLetter).catch(() => [])).length === 5, { timeoutMs: 40_000, what: 'the lost files to be dead-lettered' });
      expect(logged(t, 'task failed').map((line) => (line.error as { code: string }).code)).toEqual(Array(5).fill('STAGED_MISSING'));
    }
    await waitFor(async () => (await readdir(path.join(t.stateDir, 'spool'))).length === 0, { timeoutMs: 10_000, what: 'the spool to empty' });
    expect(logged(t, 'settling a task failed')).toEqual([]);
    const errorStacks = t.logs.filter((line) => Number(line.level) >= 50 && (line.err as { stack?: string } | undefined)?.stack !== undefined);
    expect([...logged(t, 'internal error'), ...errorStacks]).toEqual([]);
    expect(logged(t, `state_dir ${t.stateDir} `).map((line) => line.level)).toEqual([50, 30]); // said once when it went, once when it came back
    // eslint-disable-next-line no-console -- each fault test prints what it tried and what happened
    console.log(
      `state_dir ${label}: /readyz 503 "${json<{ problems: string[] }>(readyz).problems[0]?.replace(t.stateDir, 'STATE')}", upload 503 SPOOL_UNAVAILABLE, /healthz 200; ` +
        `a dropped file and 5 pushes waited; /readyz 200 ${back} ms after it was back; the dropped file and a new upload landed; the 5 accepted before ${before === 'land' ? 'landed intact' : 'were dead-lettered STAGED_MISSING (deleted with it), their records journaled again'}; 0 internal errors`,
    );
  }, 90_000);

  it('its spool directory alone removed: made again at once, the upload that found it gone gets a 503, the next ones land', async () => {
    const gate = gatedTarget();
    const t = await startAgent({ createTarget: gate.createTarget });
    expect((await send(t.url, '/drop/files/before.txt', { body: 'before' })).status).toBe(202);
    await rm(path.join(t.stateDir, 'spool'), { recursive: true });
    const first = await send(t.url, '/drop/files/first.txt', { body: 'first' });
    expectError(first, 503, 'SPOOL_UNAVAILABLE');
    expect(logged(t, 'made ')).toMatchObject([{ level: 40, dirs: [path.join(t.stateDir, 'spool')] }]);
    await waitFor(async () => (await send(t.url, '/drop/files/next.txt', { body: 'next' })).status === 202, { what: 'an upload to be taken again' });
    gate.open();
    await waitFor(async () => (await readFile(path.join(t.root, 'srv/files/next.txt'), 'utf8').catch(() => '')) === 'next', { what: 'the next upload to land' });
    await waitFor(() => logged(t, 'task failed').length === 1, { what: 'the file lost with the spool to be dead-lettered' });
    expect(logged(t, 'task failed')).toMatchObject([{ dest: '/srv/files/before.txt', error: { code: 'STAGED_MISSING' } }]);
    expect(logged(t, 'internal error')).toEqual([]);
  });
});
