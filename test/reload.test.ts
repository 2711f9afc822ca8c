// agent.reload(next), as SIGHUP runs it: watches start and stop, a changed target gets
// a new adapter for the tasks not yet started, and what needs a restart is said.
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import { planReload } from '../src/config/reload.js';
import { StevedoreError } from '../src/errors.js';
import { failed } from '../src/targets/target.js';
import { startAgent, testConfigYaml } from './helpers/agent.js';
import { localFleet } from './helpers/fleet.js';
import { json, send } from './helpers/http.js';
import { tempDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

const watchYaml = (dir: string, name: string) => `  - { name: ${name}, path: ${path.join(dir, name)}, target: box, dest: /srv/${name}, settle: 50ms }\n`;

describe('reload', () => {
  it('starts a new watch, stops a removed one, and sends new uploads to a target\'s new root', async () => {
    const dir = await tempDir();
    await mkdir(path.join(dir, 'old'));
    await mkdir(path.join(dir, 'new'));
    const t = await startAgent({ dir, extra: `watch:\n${watchYaml(dir, 'old')}` });
    const next = parseConfig(
      testConfigYaml(dir, { extra: `watch:\n${watchYaml(dir, 'new')}` }).replace(`root: ${path.join(dir, 'box')}`, `root: ${path.join(dir, 'box2')}`),
      path.join(dir, 'stevedore.yaml'),
      {},
    );
    const plan = await t.agent.reload(next);
    expect(plan).toMatchObject({ targets: ['box'], stopWatches: ['old'], startWatches: ['new'], needRestart: [] });
    expect(t.agent.watches.map((w) => w.name)).toEqual(['new']);

    await writeFile(path.join(dir, 'new', 'a.txt'), 'watched');
    await waitFor(() => existsSync(path.join(dir, 'box2/srv/new/a.txt')), { what: 'the new watch to push' });
    await writeFile(path.join(dir, 'old', 'b.txt'), 'not watched any more');
    const { id } = json<{ id: string }>(await send(t.url, '/drop/files/c.txt', { body: 'to the new root' }));
    await waitFor(async () => json<{ status: string }>(await send(t.url, `/tasks/${id}`, { method: 'GET' })).status === 'done', { what: 'the upload' });
    expect(await readFile(path.join(dir, 'box2/srv/files/c.txt'), 'utf8')).toBe('to the new root');
    expect(existsSync(path.join(dir, 'box2/srv/old/b.txt')) || existsSync(path.join(dir, 'box/srv/old/b.txt'))).toBe(false);
  });

  it('a mirror given a new dest pushes its files there, not only those that change', async () => {
    const dir = await tempDir();
    await mkdir(path.join(dir, 'm'));
    await writeFile(path.join(dir, 'm', 'a.txt'), 'mirrored');
    const mirror = (dest: string) => `watch:\n  - { name: m, path: ${path.join(dir, 'm')}, target: box, dest: ${dest}, mode: mirror, settle: 50ms }\n`;
    const t = await startAgent({ dir, extra: mirror('/srv/m') });
    await waitFor(() => existsSync(path.join(dir, 'box/srv/m/a.txt')), { what: 'the first push' });

    const plan = await t.agent.reload(parseConfig(testConfigYaml(dir, { extra: mirror('/srv/m2') }), path.join(dir, 'stevedore.yaml'), {}));
    expect(plan.startWatches).toEqual(['m']);
    await waitFor(() => existsSync(path.join(dir, 'box/srv/m2/a.txt')), { what: 'a.txt under the new dest' });
    expect(await readFile(path.join(dir, 'box/srv/m2/a.txt'), 'utf8')).toBe('mirrored');
  });

  it('a target that becomes a fleet brings the tasks it still held to the fleet\'s members', async () => {
    const dir = await tempDir();
    const fleet = localFleet(path.join(dir, 'members'));
    await fleet.add('web-1');
    // The one container `web` was is down: its upload waits in the queue.
    const createTarget: typeof fleet.createTarget = (name, config, logger, ledger, member) =>
      member === undefined && name === 'web'
        ? { name, runtime: 'docker', push: async (items) => items.map(() => failed(new StevedoreError('TARGET_DOWN', 'web-0 is not running'))) }
        : fleet.createTarget(name, config, logger, ledger, member);
    const route = '    - { name: web, path: /drop/web, target: web, dest: /srv/web }';
    const t = await startAgent({ dir, targets: '  web: { runtime: docker, container: web-0 }', http: route, createTarget, createMembership: fleet.createMembership });
    const { id } = json<{ id: string }>(await send(t.url, '/drop/web/a.txt', { body: 'held' }));
    await waitFor(() => t.logs.some((l) => l.taskId === id && l.msg === 'task retrying'), { what: 'the upload to wait for web-0' });

    const next = testConfigYaml(dir, { targets: '  web: { runtime: docker, select: { labels: { app: web } } }', http: route });
    expect((await t.agent.reload(parseConfig(next, path.join(dir, 'stevedore.yaml'), {}))).targets).toEqual(['web']);
    await waitFor(() => existsSync(path.join(fleet.dir('web-1'), 'srv/web/a.txt')), { what: 'the held upload in web-1' });
    expect(await readFile(path.join(fleet.dir('web-1'), 'srv/web/a.txt'), 'utf8')).toBe('held');
    await waitFor(async () => json<{ status: string }>(await send(t.url, `/tasks/${id}`, { method: 'GET' })).status === 'done', { what: 'the task to be done' });
    // The one container's lane, down when it was left, is gone with it.
    expect((await send(t.url, '/readyz', { method: 'GET' })).status).toBe(200);
  });

  it('a fleet that would become one container runs on as a fleet until a restart: its waiting deliveries still land, none ends as "member left"', async () => {
    const dir = await tempDir();
    const fleet = localFleet(path.join(dir, 'members'));
    await fleet.add('web-1', { running: false }); // stopped: the delivery waits
    const route = '    - { name: web, path: /drop/web, target: web, dest: /srv/web }';
    const fleetTarget = '  web: { runtime: docker, select: { labels: { app: web } } }';
    const t = await startAgent({ dir, targets: fleetTarget, http: route, createTarget: fleet.createTarget, createMembership: fleet.createMembership });
    const { id } = json<{ id: string }>(await send(t.url, '/drop/web/a.txt', { body: 'held' }));
    await waitFor(() => (fleet.pushed.get('web-1') ?? []).length > 0, { what: 'a delivery to web-1 to be tried' });

    const next = testConfigYaml(dir, { targets: '  web: { runtime: docker, container: web-0 }', http: route });
    const plan = await t.agent.reload(parseConfig(next, path.join(dir, 'stevedore.yaml'), {}));
    expect(plan).toMatchObject({ targets: [], keptTargets: ['web'], needRestart: ['targets.web (a fleet becoming one container, or removed)'] });
    fleet.start('web-1');
    await waitFor(() => existsSync(path.join(fleet.dir('web-1'), 'srv/web/a.txt')), { what: 'the waiting delivery to land in web-1' });
    expect(await readFile(path.join(fleet.dir('web-1'), 'srv/web/a.txt'), 'utf8')).toBe('held');
    const task = await waitFor(async () => {
      const now = json<{ status: string; deliveries: { container: string; status: string }[] }>(await send(t.url, `/tasks/${id}`, { method: 'GET' }));
      return now.status === 'done' ? now : undefined;
    }, { what: 'the task to be done' });
    expect(task.deliveries).toEqual([expect.objectContaining({ container: 'web-1', status: 'done' })]);
  });

  it('a limit that needs a restart stays what runs: a second reload still says so, and going back to it needs none', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'stevedore.yaml');
    const t = await startAgent({ dir, http: '  max_body: 1KiB', extra: 'retain_max: 1MiB' });
    const asked = parseConfig(testConfigYaml(dir, { http: '  max_body: 2KiB', extra: 'retain_max: 2MiB' }).replace('format: json', 'format: pretty'), file, {});
    const restart = ['http.max_body', 'log.format', 'retain_max'];
    expect((await t.agent.reload(asked)).needRestart).toEqual(restart);
    expect((await t.agent.reload(asked)).needRestart).toEqual(restart);
    expect((await send(t.url, '/drop/files/big.bin', { body: 'x'.repeat(1500) })).status).toBe(413);
    const running = parseConfig(testConfigYaml(dir, { http: '  max_body: 1KiB', extra: 'retain_max: 1MiB' }), file, {});
    expect((await t.agent.reload(running)).needRestart).toEqual([]);
  });

  it('plans nothing for the same config, and names what needs a restart', () => {
    const a = parseConfig(testConfigYaml('/x'), '/x/s.yaml', {});
    expect(planReload(a, a)).toEqual({ targets: [], removedTargets: [], keptTargets: [], stopWatches: [], startWatches: [], needRestart: [] });
    const b = parseConfig(testConfigYaml('/y', { queue: 'capacity: 7' }).replace('127.0.0.1:0', '127.0.0.1:9'), '/y/s.yaml', {});
    expect(planReload(a, b).needRestart).toEqual(['state_dir', 'http.listen', 'queue']);
  });
});
