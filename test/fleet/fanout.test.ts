// Fleets through a real agent (SPEC §7), with a stand-in runtime whose members are
// directories (test/helpers/fleet.ts): one task per file, one delivery per member, each
// member's outcome its own; members that join, leave, stop and come back re-created.
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { startAgent, testConfigYaml, type StartOptions, type TestAgent } from '../helpers/agent.js';
import { localFleet, type LocalFleet } from '../helpers/fleet.js';
import { tempDir } from '../helpers/temp.js';
import { waitFor } from '../helpers/wait.js';

const WEB = '  web: { runtime: docker, select: { labels: { app: web } } }';
const ROUTE = '    - { name: web, path: /drop/web, target: web, dest: /srv/web, retain: true }';

interface Setup {
  fleet: LocalFleet;
  t: TestAgent;
  dir: string;
}

async function fleetAgent(members: string[], options: StartOptions = {}, dir?: string, fleet?: LocalFleet): Promise<Setup> {
  const base = dir ?? (await tempDir());
  const f = fleet ?? localFleet(path.join(base, 'members'));
  for (const member of members) await f.add(member);
  const t = await startAgent({ dir: base, targets: WEB, http: ROUTE, createTarget: f.createTarget, createMembership: f.createMembership, ...options });
  return { fleet: f, t, dir: base };
}

const read = (f: LocalFleet, member: string, rel: string) => readFile(path.join(f.dir(member), 'srv/web', rel), 'utf8').catch(() => undefined);

async function upload(t: TestAgent, rel: string, body: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${t.url}/drop/web/${rel}`, { method: 'PUT', body });
  expect(res.status).toBe(202);
  return (await res.json()) as Record<string, unknown>;
}

const exists = (file: string) => stat(file).then(() => true, () => false);

/** Every task accepted is over, its bookkeeping done (GET /status). */
async function queueEmpty(t: TestAgent): Promise<boolean> {
  const status = (await (await fetch(`${t.url}/status`)).json()) as { queue: { depth: number; in_flight: number } };
  return status.queue.depth === 0 && status.queue.in_flight === 0;
}

/** Each member's `ready` (brought to the declared state), from GET /status. */
async function readiness(t: TestAgent): Promise<Record<string, boolean>> {
  const status = (await (await fetch(`${t.url}/status`)).json()) as { fleets: { members: { name: string; ready: boolean }[] }[] };
  return Object.fromEntries((status.fleets[0]?.members ?? []).map((m) => [m.name, m.ready]));
}

async function taskOf(t: TestAgent, id: unknown, status: string): Promise<Record<string, unknown>> {
  return waitFor(async () => {
    const task = (await (await fetch(`${t.url}/tasks/${String(id)}`)).json()) as Record<string, unknown>;
    return task.status === status ? task : undefined;
  }, { what: `task ${String(id)} to be ${status}` });
}

describe('a fleet target', () => {
  it('delivers each file to every member: one task, one delivery per member, done when all have it', async () => {
    const { fleet, t } = await fleetAgent(['web-1', 'web-2', 'web-3']);
    const first = await upload(t, 'a.txt', 'alpha');
    await upload(t, 'sub/b.txt', 'beta');
    const done = await taskOf(t, first.id, 'done');
    expect(done.deliveries).toEqual(['web-1', 'web-2', 'web-3'].map((container) => ({ container, status: 'done', attempts: 1 })));
    for (const member of ['web-1', 'web-2', 'web-3']) {
      await waitFor(async () => (await read(fleet, member, 'sub/b.txt')) === 'beta', { what: `b.txt in ${member}` });
      expect(await read(fleet, member, 'a.txt')).toBe('alpha');
    }
    await waitFor(async () => (await readdir(path.join(t.stateDir, 'spool'))).length === 0, { what: 'the spool to empty' });
  });

  it('a member that refuses a path fails alone: its delivery is dead-lettered by itself, the others are done, and a retry reaches it alone', async () => {
    const { fleet, t } = await fleetAgent(['web-1', 'web-2', 'web-3']);
    // In web-2 a file stands where the directory must be: DEST_UNSAFE, permanent.
    await writeFile(path.join(fleet.dir('web-2'), 'srv'), 'in the way');
    const task = await upload(t, 'x/refused.txt', 'data');
    const failed = await taskOf(t, task.id, 'failed');
    expect(failed.deliveries).toEqual([
      { container: 'web-1', status: 'done', attempts: 1 },
      { container: 'web-2', status: 'failed', attempts: 1, error: expect.objectContaining({ code: 'DEST_UNSAFE' }) },
      { container: 'web-3', status: 'done', attempts: 1 },
    ]);
    const entries = ((await (await fetch(`${t.url}/dead-letter`)).json()) as { entries: Record<string, unknown>[] }).entries;
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ target: 'web', dest: '/srv/web/x/refused.txt', has_data: true });
    // Fixed in the member, the entry goes back, for web-2 only.
    await import('node:fs/promises').then(({ rm }) => rm(path.join(fleet.dir('web-2'), 'srv')));
    const before = fleet.pushed.get('web-1')?.length;
    const retried = (await (await fetch(`${t.url}/dead-letter/${String(entries[0]?.id)}/retry`, { method: 'POST' })).json()) as Record<string, unknown>;
    const again = await taskOf(t, retried.id, 'done');
    expect(again.deliveries).toEqual([{ container: 'web-2', status: 'done', attempts: 1 }]);
    expect(await read(fleet, 'web-2', 'x/refused.txt')).toBe('data');
    expect(fleet.pushed.get('web-1')?.length).toBe(before);
  });

  it('a stopped member is waited for without spending attempts; a drop file leaves the host only once every member has it', async () => {
    const base = await tempDir();
    const drop = path.join(base, 'in');
    await import('node:fs/promises').then(({ mkdir }) => mkdir(drop));
    const fleet = localFleet(path.join(base, 'members'));
    await fleet.add('web-1');
    await fleet.add('web-2', { running: false });
    const extra = `watch: [{ name: in, path: ${drop}, target: web, dest: /srv/web/dropped, settle: 50ms }]`;
    const { t } = await fleetAgent([], { extra }, base, fleet);
    await writeFile(path.join(drop, 'd.txt'), 'dropped');
    await waitFor(async () => (await read(fleet, 'web-1', 'dropped/d.txt')) === 'dropped', { what: 'd.txt in web-1' });
    await waitFor(() => (fleet.pushed.get('web-2')?.length ?? 0) > 0, { what: 'a push into web-2 to fail' });
    expect(await readFile(path.join(drop, 'd.txt'), 'utf8')).toBe('dropped');
    fleet.start('web-2');
    await waitFor(async () => (await read(fleet, 'web-2', 'dropped/d.txt')) === 'dropped', { what: 'd.txt in web-2', timeoutMs: 10_000 });
    await waitFor(async () => !(await stat(path.join(drop, 'd.txt')).then(() => true, () => false)), { what: 'd.txt to leave the host' });
    // The host file goes while the task settles, a moment before `task done` is announced.
    await waitFor(() => t.logs.some((l) => l.msg === 'task done' && l.dest === '/srv/web/dropped/d.txt' && l.container === undefined), { what: 'the fleet task to be done' });
  });

  it('a member that leaves while its delivery waits ends that delivery as gone, and the task is done without it', async () => {
    const base = await tempDir();
    const fleet = localFleet(path.join(base, 'members'));
    await fleet.add('web-1');
    await fleet.add('web-2', { running: false });
    const { t } = await fleetAgent([], {}, base, fleet);
    const task = await upload(t, 'g.txt', 'for both');
    // Its delivery to web-2 waits for web-2 to start, holding the task open.
    await waitFor(async () => {
      const now = (await (await fetch(`${t.url}/tasks/${String(task.id)}`)).json()) as { deliveries?: { container: string; status: string }[] };
      return now.deliveries?.some((d) => d.container === 'web-2' && d.status === 'retrying');
    }, { what: 'the delivery to web-2 to wait' });
    fleet.remove('web-2');
    const done = await taskOf(t, task.id, 'done');
    expect(done.deliveries).toEqual([
      { container: 'web-1', status: 'done', attempts: 1 },
      { container: 'web-2', status: 'gone', attempts: 0 },
    ]);
    expect(await read(fleet, 'web-1', 'g.txt')).toBe('for both');
  });

  it('a member re-created under its name, and a new replica, get the retained versions and what is still live; one that leaves gets nothing more', async () => {
    const { fleet, t } = await fleetAgent(['web-1', 'web-2']);
    const older = await upload(t, 'v.txt', 'version 1');
    await taskOf(t, older.id, 'done');
    const newer = await upload(t, 'v.txt', 'version 2');
    await taskOf(t, newer.id, 'done');
    await upload(t, 'w.txt', 'other');
    await fleet.recreate('web-2');
    await fleet.add('web-3');
    for (const member of ['web-2', 'web-3']) {
      await waitFor(async () => (await read(fleet, member, 'v.txt')) === 'version 2' && (await read(fleet, member, 'w.txt')) === 'other', { what: `${member} to catch up` });
    }
    fleet.remove('web-1');
    const after = await upload(t, 'z.txt', 'last');
    const done = await taskOf(t, after.id, 'done');
    expect((done.deliveries as { container: string }[]).map((d) => d.container)).toEqual(['web-2', 'web-3']);
    expect(await read(fleet, 'web-1', 'z.txt')).toBeUndefined();
    const status = (await (await fetch(`${t.url}/status`)).json()) as { fleets: { name: string; members: { name: string; ready: boolean }[] }[] };
    expect(status.fleets[0]?.members.map((m) => [m.name, m.ready])).toEqual([['web-2', true], ['web-3', true]]);
    // Metrics carry a container label for members there now only: web-1 left with its series.
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toContain('stevedore_fleet_members{target="web",state="running"} 2');
    expect(metrics).toMatch(/stevedore_deliveries_total\{target="web",container="web-3",outcome="done"\} [1-9]/);
    expect(metrics).not.toContain('container="web-1"');
  });
});

describe('a fleet task across a restart', () => {
  it('is not delivered again to the members that had it: only the one still waiting gets it after the restart', async () => {
    const base = await tempDir();
    const fleet = localFleet(path.join(base, 'members'));
    await fleet.add('web-1');
    await fleet.add('web-2', { running: false });
    const first = await fleetAgent([], {}, base, fleet);
    const task = await upload(first.t, 'kept.txt', 'across');
    await waitFor(async () => (await read(fleet, 'web-1', 'kept.txt')) === 'across', { what: 'kept.txt in web-1' });
    await waitFor(() => first.t.logs.some((l) => l.container === 'web-2' && l.msg === 'task retrying'), { what: 'web-2 to be waited for' });
    await first.t.close();
    const pushesBefore = fleet.pushed.get('web-1')?.length ?? 0;
    fleet.start('web-2');
    const second = await fleetAgent([], {}, base, fleet);
    const done = await taskOf(second.t, task.id, 'done');
    expect(done.deliveries).toEqual([
      { container: 'web-1', status: 'done', attempts: 0 },
      { container: 'web-2', status: 'done', attempts: 1 },
    ]);
    expect(await read(fleet, 'web-2', 'kept.txt')).toBe('across');
    expect(fleet.pushed.get('web-1')?.length ?? 0).toBe(pushesBefore);
  });

  it('a task\'s retained version is saved before its end is journaled, and a recovered task is kept again: a crash never costs later members a file', async () => {
    const base = await tempDir();
    const fleet = localFleet(path.join(base, 'members'));
    await fleet.add('web-1');
    await fleet.add('web-2');
    const first = await fleetAgent([], {}, base, fleet);
    const done = await upload(first.t, 'saved.txt', 'saved');
    await taskOf(first.t, done.id, 'done');
    // Done: its version is on disk already, not a second later.
    const index = await readFile(path.join(base, 'state/retain/index.json'), 'utf8').catch(() => '');
    expect(index).toContain('/srv/web/saved.txt');
    fleet.stop('web-2');
    const live = await upload(first.t, 'live.txt', 'live');
    await waitFor(async () => (await read(fleet, 'web-1', 'live.txt')) === 'live', { what: 'live.txt in web-1' });
    await first.t.close();
    // A crash that lost the index (saved once a second) while live.txt's task was live.
    await import('node:fs/promises').then(({ rm }) => rm(path.join(base, 'state/retain/index.json')));
    fleet.start('web-2');
    const second = await fleetAgent([], {}, base, fleet);
    await taskOf(second.t, live.id, 'done');
    await fleet.add('web-3'); // after the task ended: only a retained version brings it
    await waitFor(async () => (await read(fleet, 'web-3', 'live.txt')) === 'live', { what: 'web-3 to get the recovered task\'s file' });
  });

  it('remembers every member brought to its declared state: a restart brings none of them the retained versions again', async () => {
    const members = Array.from({ length: 12 }, (_, i) => `web-${i + 1}`);
    const { fleet, t, dir } = await fleetAgent(members);
    await waitFor(async () => ((await (await fetch(`${t.url}/status`)).json()) as { fleets: { members: { ready: boolean }[] }[] }).fleets[0]?.members.every((m) => m.ready), { what: 'every member ready' });
    const done = await upload(t, 'kept.txt', 'kept');
    await taskOf(t, done.id, 'done');
    await t.close();
    const saved = JSON.parse(await readFile(path.join(t.stateDir, 'fleets/web.json'), 'utf8')) as { members: Record<string, string> };
    expect(Object.keys(saved.members).sort()).toEqual([...members].sort());
    const pushed = members.map((m) => fleet.pushed.get(m)?.length ?? 0);
    const again = await fleetAgent([], {}, dir, fleet);
    await waitFor(() => again.t.logs.some((l) => l.msg === 'listening'), { what: 'the agent to start' });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(members.map((m) => fleet.pushed.get(m)?.length ?? 0)).toEqual(pushed);
  });

  it('a member that stops matching stops receiving, and one that starts matching catches up', async () => {
    const { fleet, t } = await fleetAgent(['web-1', 'web-2']);
    const task = await upload(t, 'r.txt', 'before');
    await taskOf(t, task.id, 'done');
    fleet.remove('web-1');
    await fleet.add('web-9');
    await waitFor(async () => (await read(fleet, 'web-9', 'r.txt')) === 'before', { what: 'web-9 to catch up' });
    const after = await upload(t, 'r2.txt', 'after');
    const done = await taskOf(t, after.id, 'done');
    expect((done.deliveries as { container: string }[]).map((d) => d.container)).toEqual(['web-2', 'web-9']);
  });
});

describe('a mirror into a fleet', () => {
  it('a file or directory deleted from the folder is not brought to a member that joins later', async () => {
    const base = await tempDir();
    const folder = path.join(base, 'folder');
    await mkdir(path.join(folder, 'sub'), { recursive: true });
    await writeFile(path.join(folder, 'keep.txt'), 'kept');
    await writeFile(path.join(folder, 'gone.txt'), 'deleted');
    await writeFile(path.join(folder, 'sub', 'x.txt'), 'deleted with its directory');
    const watch = `watch:\n  - { name: m, path: ${folder}, target: web, dest: /srv/web, mode: mirror, delete: true, settle: 50ms }`;
    const { fleet, t } = await fleetAgent(['web-1'], { extra: watch }, base);
    await waitFor(async () => (await read(fleet, 'web-1', 'sub/x.txt')) !== undefined && (await read(fleet, 'web-1', 'gone.txt')) !== undefined, { what: 'the first push' });

    await rm(path.join(folder, 'gone.txt'));
    await rm(path.join(folder, 'sub'), { recursive: true });
    await waitFor(async () => !(await exists(path.join(fleet.dir('web-1'), 'srv/web/gone.txt'))) && !(await exists(path.join(fleet.dir('web-1'), 'srv/web/sub'))), { what: 'the deletes in web-1' });
    await waitFor(() => queueEmpty(t), { what: 'every task to be over' });

    await fleet.add('web-2');
    await waitFor(async () => ((await (await fetch(`${t.url}/status`)).json()) as { fleets: { members: { name: string; ready: boolean }[] }[] }).fleets[0]?.members.find((m) => m.name === 'web-2')?.ready, { what: 'web-2 ready' });
    expect(await read(fleet, 'web-2', 'keep.txt')).toBe('kept');
    expect(await read(fleet, 'web-2', 'gone.txt')).toBeUndefined();
    expect(await read(fleet, 'web-2', 'sub/x.txt')).toBeUndefined();
  });
});

describe('a reload that follows a fleet anew (its selector changed)', () => {
  it('a member still catching up is ready only once it has every retained version, not when the old catch-up is replaced', async () => {
    const { fleet, t, dir } = await fleetAgent(['web-1']);
    for (const name of ['a.txt', 'b.txt']) await taskOf(t, (await upload(t, name, name)).id, 'done');
    await fleet.add('web-2', { running: false }); // its catch-up waits for it
    await waitFor(() => t.logs.filter((l) => l.container === 'web-2' && l.msg === 'task retrying').length === 2, { what: 'the catch-up to wait for web-2' });

    const next = testConfigYaml(dir, { targets: '  web: { runtime: docker, select: { labels: { app: web }, name: "web-*" } }', http: ROUTE });
    await t.agent.reload(parseConfig(next, path.join(dir, 'stevedore.yaml'), {}));
    // The first catch-up's tasks, replaced by the new one's, are over.
    await waitFor(() => t.logs.filter((l) => l.container === 'web-2' && l.msg === 'task done' && l.supersededBy !== undefined).length === 2, { what: 'the first catch-up to be replaced' });
    expect(await readiness(t)).toEqual({ 'web-1': true, 'web-2': false });

    fleet.start('web-2');
    await waitFor(async () => (await readiness(t))['web-2'], { what: 'web-2 ready' });
    expect([await read(fleet, 'web-2', 'a.txt'), await read(fleet, 'web-2', 'b.txt')]).toEqual(['a.txt', 'b.txt']);
  });
});

describe('a fleet member that started again', () => {
  it('gets the retained versions again: its filesystem may have lost them (a tmpfs, an ephemeral container)', async () => {
    const { fleet, t } = await fleetAgent(['web-1']);
    const task = await upload(t, 'kept.txt', 'kept');
    await taskOf(t, task.id, 'done');
    fleet.stop('web-1');
    await import('node:fs/promises').then(({ rm }) => rm(path.join(fleet.dir('web-1'), 'srv'), { recursive: true }));
    fleet.start('web-1');
    await waitFor(async () => (await read(fleet, 'web-1', 'kept.txt')) === 'kept', { what: 'kept.txt back in web-1' });
  });
});
