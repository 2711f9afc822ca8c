// A fleet through the whole agent on each real runtime (issue 13, SPEC §7): three members
// selected by label get every file of a `retain: true` route and a mirror watch, each
// member's delivery in the task JSON; a member re-created under its name and a fourth
// replica converge to the same files; a stopped member keeps a drop file on the host
// until it runs again; a member that refuses a path is dead-lettered alone and retried
// alone; and after the event stream is cut (the daemon restarted; Podman: its `podman
// events` process killed) a replica started later still catches up. The cases share one
// agent and its members, in order; each leaves the fleet converged for the next. Daemon
// tests stop the real daemon: this project runs these files one at a time.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { deadLetterCommand } from '../../src/commands/dead-letter.js';
import { launchAgent, type TestAgent } from '../helpers/agent.js';
import { json, send } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { runtimesToTest, type RuntimeUnderTest } from './runtimes.js';

const list = await runtimesToTest();
const figures: string[] = [];

afterAll(() => {
  if (figures.length > 0) process.stdout.write(`fleet agent: a member's change → identical to the others (ms)\n${figures.join('\n')}\n`);
});

interface Delivery {
  container: string;
  status: string;
  attempts: number;
  error?: { code: string; message: string };
}

interface TaskJson {
  id: string;
  status: string;
  dest: string;
  deliveries?: Delivery[];
}

// Every file under /srv with its content, one `path=content` a line, sorted: a member's
// whole declared state (and any staging name left behind) in one comparable string.
const STATE = 'cd /srv 2>/dev/null && find . -type f | LC_ALL=C sort | while read -r f; do echo "$f=$(cat "$f")"; done; true';

describe.each(list)('$name', (runtime: RuntimeUnderTest) => {
  const p = `sd-fa-${randomBytes(3).toString('hex')}`;
  const made = new Set<string>();
  const member = (n: number) => `${p}-${n}`;
  let t: TestAgent;
  let site: string;
  let drop: string;
  let dir = '';

  const make = async (name: string) => {
    await runtime.createLabeled(name, { fleet: p });
    made.add(name);
  };
  const state = (name: string) => runtime.sh(name, STATE);
  const task = async (id: string) => json<TaskJson>(await send(t.url, `/tasks/${id}`, { method: 'GET' }));
  const ended = (id: string, status: 'done' | 'failed', timeoutMs = 30_000) =>
    waitFor(async () => {
      const now = await task(id);
      return now.status === status ? now : undefined;
    }, { timeoutMs, intervalMs: 50, what: `task ${id} to be ${status}` });
  const upload = async (rel: string, body: string) => {
    const answer = await send(t.url, `/drop/web/${rel}`, { body });
    expect(answer.status, answer.text).toBe(202);
    return json<TaskJson>(answer);
  };
  /** Waits until `name` holds exactly `expected`; answers how long that took. */
  const converged = async (name: string, expected: string, timeoutMs = 20_000) => {
    const since = performance.now();
    let last = '';
    try {
      await waitFor(async () => (last = await state(name)) === expected, { timeoutMs, intervalMs: 100, what: `${name} to hold the declared state` });
    } catch (error) {
      expect(last, `${name} after ${timeoutMs} ms`).toBe(expected);
      throw error;
    }
    return Math.round(performance.now() - since);
  };
  const status = async () => json<{ fleets: { name: string; following: boolean; members: { name: string; ready: boolean; running: boolean }[] }[] }>(await send(t.url, '/status', { method: 'GET' })).fleets[0];
  /** The pushes logged for deliveries into `name` so far. */
  const pushesInto = (name: string) => t.logs.filter((line) => line.msg === 'task pushing' && line.container === name).length;

  // What every member holds once it is converged, as the cases go: path → content.
  const files = new Map<string, string>();
  const declared = () => [...files].sort(([a], [b]) => (a < b ? -1 : 1)).map(([file, content]) => `./${file}=${content}`).join('\n');

  beforeAll(async () => {
    if (runtime.missing) throw new Error(`${runtime.name} is required under CI=true but cannot be used: ${runtime.missing}`);
    for (const n of [1, 2, 3]) await make(member(n));
    dir = await mkdtemp(path.join(tmpdir(), 'stevedore-fleet-agent-'));
    site = path.join(dir, 'site');
    drop = path.join(dir, 'drop');
    await mkdir(site);
    await mkdir(drop);
    await writeFile(path.join(site, 'index.html'), '<h1>site</h1>');
    await writeFile(path.join(site, 'old.txt'), 'to be deleted');
    t = await launchAgent({
      dir,
      targets: `  web: { runtime: ${runtime.name}, select: { labels: { fleet: ${p} } } }`,
      http: '    - { name: web, path: /drop/web, target: web, dest: /srv/web, retain: true }',
      extra: `watch:
  - { name: site, path: ${site}, target: web, dest: /srv/site, mode: mirror, delete: true, settle: 50ms }
  - { name: in, path: ${drop}, target: web, dest: /srv/dropped, settle: 50ms, retain: true }`,
    });
  });
  afterAll(async () => {
    await t?.close();
    for (const name of made) await runtime.remove(name);
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 90_000);

  it('three members selected by label get every upload and the mirror (deletes too); each task shows every member done', async () => {
    const first = await upload('a.txt', 'version 1');
    await ended(first.id, 'done');
    const newer = await upload('a.txt', 'version 2');
    const other = await upload('b/c.txt', 'c');
    for (const id of [newer.id, other.id]) {
      const done = await ended(id, 'done');
      expect(done.deliveries).toEqual([1, 2, 3].map((n) => ({ container: member(n), status: 'done', attempts: 1 })));
    }
    await rm(path.join(site, 'old.txt'));
    files.set('site/index.html', '<h1>site</h1>').set('web/a.txt', 'version 2').set('web/b/c.txt', 'c');
    for (const n of [1, 2, 3]) await converged(member(n), declared());
    const fleet = await status();
    expect(fleet?.following).toBe(true);
    expect(fleet?.members.map((m) => [m.name, m.running, m.ready]).sort()).toEqual([1, 2, 3].map((n) => [member(n), true, true]));
  });

  it('a member removed and re-created under its name gets the newest retained uploads and the mirror\'s content, within seconds', async () => {
    await runtime.remove(member(2));
    await make(member(2));
    const ms = await converged(member(2), declared());
    figures.push(`  ${runtime.name}: re-created member ${ms}`);
    await waitFor(async () => (await status())?.members.find((m) => m.name === member(2))?.ready, { what: 'the re-created member to be ready' });
  });

  it('a fourth replica started later catches up the same way, and gets what comes next', async () => {
    await make(member(4));
    const ms = await converged(member(4), declared());
    figures.push(`  ${runtime.name}: 4th replica ${ms}`);
    const next = await upload('d.txt', 'after the fourth');
    const done = await ended(next.id, 'done');
    expect(done.deliveries?.map((d) => d.container)).toEqual([1, 2, 3, 4].map(member));
    files.set('web/d.txt', 'after the fourth');
    for (const n of [1, 2, 3, 4]) await converged(member(n), declared());
  });

  it('a drop file stays on the host while a member is stopped (its delivery waits, no attempts spent), then lands everywhere and leaves the host', async () => {
    await runtime.stop(member(3));
    await waitFor(async () => (await status())?.members.find((m) => m.name === member(3))?.running === false, { timeoutMs: 15_000, what: 'the stop to be seen' });
    const file = path.join(drop, 'd.txt');
    await writeFile(file, 'dropped');
    const queued = await waitFor(() => t.logs.find((line) => line.msg === 'task queued' && line.dest === '/srv/dropped/d.txt' && line.container === undefined), { timeoutMs: 10_000, what: 'the drop file\'s task' });
    const id = String(queued.taskId);
    for (const n of [1, 2, 4]) await waitFor(async () => (await state(member(n))).includes('./dropped/d.txt=dropped'), { timeoutMs: 15_000, what: `d.txt in ${member(n)}` });
    // Landed is not yet done: a delivery whose push is retried (Podman beside two CPU
    // hogs) keeps the task `pushing` while its file is already there.
    const others = [1, 2, 4].map((n) => member(n));
    await waitFor(async () => {
      const deliveries = (await task(id)).deliveries ?? [];
      return others.every((name) => deliveries.some((d) => d.container === name && d.status === 'done'));
    }, { timeoutMs: 30_000, what: `the deliveries into ${others.join(', ')} to be done` });
    await new Promise((resolve) => setTimeout(resolve, 1500)); // a few more probes of the stopped member
    expect(existsSync(file)).toBe(true);
    // Read between probes: a push in flight counts its attempt until it is found down.
    const waiting = await waitFor(async () => {
      const now = await task(id);
      return now.deliveries?.find((d) => d.container === member(3))?.status === 'retrying' ? now : undefined;
    }, { timeoutMs: 10_000, what: `the delivery into ${member(3)} to wait` });
    expect(waiting.status).toBe('retrying');
    expect(waiting.deliveries?.find((d) => d.container === member(3))).toMatchObject({ attempts: 0, error: expect.objectContaining({ code: 'TARGET_DOWN' }) });
    await runtime.start(member(3));
    await ended(id, 'done');
    expect(existsSync(file)).toBe(false);
    files.set('dropped/d.txt', 'dropped');
    for (const n of [1, 2, 3, 4]) await converged(member(n), declared());
  });

  it('a member that refuses a path (a file where a directory must be) is dead-lettered alone while the others are done; `stevedore dead-letter retry` reaches it alone', async () => {
    await runtime.sh(member(1), 'echo in-the-way > /srv/web/x');
    const refused = await upload('x/r.txt', 'refused');
    const failed = await ended(refused.id, 'failed');
    expect(failed.deliveries).toEqual([1, 2, 3, 4].map((n) => (n === 1
      ? { container: member(1), status: 'failed', attempts: 1, error: expect.objectContaining({ code: 'DEST_UNSAFE' }) }
      : { container: member(n), status: 'done', attempts: 1 })));
    const entries = json<{ entries: { id: string; target: string; dest: string; has_data: boolean }[] }>(await send(t.url, '/dead-letter', { method: 'GET' })).entries;
    expect(entries).toEqual([expect.objectContaining({ target: 'web', dest: '/srv/web/x/r.txt', has_data: true })]);

    await runtime.sh(member(1), 'rm /srv/web/x'); // the operator fixes the member
    const before = [2, 3, 4].map((n) => pushesInto(member(n)));
    const printed: string[] = [];
    // What the command prints ("queued again: … as task ID") is read, not shown.
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => printed.push(String(chunk)) > 0);
    try {
      const http = t.config.http as NonNullable<TestAgent['config']['http']>;
      const code = await deadLetterCommand({ ...t.config, http: { ...http, listen: new URL(t.url).host } }, 'retry', entries[0]?.id, false);
      expect(code).toBe(0);
    } finally {
      spy.mockRestore();
    }
    const retriedId = /as task (\S+)/.exec(printed.join(''))?.[1] ?? '';
    const again = await ended(retriedId, 'done');
    expect(again.deliveries).toEqual([{ container: member(1), status: 'done', attempts: 1 }]);
    files.set('web/x/r.txt', 'refused');
    for (const n of [1, 2, 3, 4]) await converged(member(n), declared());
    expect([2, 3, 4].map((n) => pushesInto(member(n)))).toEqual(before);
  });

  it(`the event stream cut (${runtime.daemon ? `${runtime.daemon.process} restarted` : 'its podman events process killed'}): a replica started afterwards still catches up`, async () => {
    await cutStream(runtime, async () => (await status())?.following === true);
    // Docker stops its containers with its daemon; Incus and LXD keep them running.
    if (runtime.name === 'docker') for (const n of [1, 2, 3, 4]) await runtime.start(member(n));
    await waitFor(async () => (await status())?.following, { timeoutMs: 60_000, intervalMs: 100, what: 'the fleet to be followed again' });
    await make(member(5));
    const ms = await converged(member(5), declared(), 30_000);
    figures.push(`  ${runtime.name}: replica after the stream cut ${ms}`);
    const last = await upload('after-cut.txt', 'last');
    const done = await ended(last.id, 'done');
    expect(done.deliveries?.map((d) => [d.container, d.status])).toEqual([1, 2, 3, 4, 5].map((n) => [member(n), 'done']));
  }, 180_000);
});

// Cuts the runtime's event stream under the agent, and waits until the agent says it is not following.
async function cutStream(runtime: RuntimeUnderTest, following: () => Promise<boolean>): Promise<void> {
  const stopped = () => waitFor(async () => !(await following()), { timeoutMs: 30_000, intervalMs: 50, what: 'the agent to stop following' });
  if (runtime.daemon) {
    try {
      await runtime.daemon.stop();
      await stopped();
    } finally {
      await runtime.daemon.start();
    }
    return;
  }
  // The agent's own `podman events` process: a child of this test's process.
  const { stdout } = await execa('pgrep', ['-P', String(process.pid), '-f', '^podman events']);
  for (const pid of stdout.split('\n')) process.kill(Number(pid), 'SIGKILL');
  await stopped();
}
