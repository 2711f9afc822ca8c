// The operator's commands as users run them (the built CLI, spawned): `status`,
// `dead-letter` through a running agent and on a stopped one, and `reload` of a running
// `stevedore run` under load.
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { startAgent, testConfigYaml, type TestAgent } from '../helpers/agent.js';
import { cli, start, useBuiltCli } from '../helpers/cli.js';
import { freePort, json, send } from '../helpers/http.js';
import { tempDir } from '../helpers/temp.js';
import { waitFor } from '../helpers/wait.js';

useBuiltCli();

/** The config file a CLI reads to reach agent `t` (same state_dir, its real port). */
async function configFor(t: TestAgent, extra = ''): Promise<string> {
  const file = path.join(t.dir, 'stevedore.yaml');
  await writeFile(file, testConfigYaml(t.dir).replace('listen: 127.0.0.1:0', `listen: ${new URL(t.url).host}`) + extra);
  return file;
}

async function failOne(t: TestAgent, rel: string, body: string): Promise<string> {
  await mkdir(path.join(t.root, 'srv/files', rel, 'in-the-way'), { recursive: true });
  const { id } = json<{ id: string }>(await send(t.url, `/drop/files/${rel}`, { body }));
  await waitFor(async () => json<{ status: string }>(await send(t.url, `/tasks/${id}`, { method: 'GET' })).status === 'failed', { what: 'the push to fail' });
  return id;
}

describe('stevedore status', () => {
  it('prints the running agent\'s targets and recent failures as tables, or its JSON with --json', async () => {
    const t = await startAgent();
    const id = await failOne(t, 'blocked.txt', 'x');
    const file = await configFor(t);
    const text = await cli(['status', '-c', file]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^queue: 0 of \d+, 0 batch\(es\) pushing/);
    expect(text.stdout).toMatch(/\nTARGET +RUNTIME +WHERE +STATE/);
    expect(text.stdout).toMatch(/\nbox +local +\S+ +up /);
    expect(text.stdout).toContain(`${id}  box     /srv/files/blocked.txt  DEST_IS_DIR`);
    const raw = await cli(['status', '-c', file, '--json']);
    expect(JSON.parse(raw.stdout)).toMatchObject({ dead_letter: 1, targets: [{ name: 'box', up: true }] });
  });

  it('exits 1 with one line when no agent answers', async () => {
    const dir = await tempDir();
    const port = await freePort();
    const file = path.join(dir, 'stevedore.yaml');
    await writeFile(file, testConfigYaml(dir).replace('listen: 127.0.0.1:0', `listen: 127.0.0.1:${port}`));
    const result = await cli(['status', '-c', file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`stevedore: the agent at http://127.0.0.1:${port} is not reachable (ECONNREFUSED)\n`);
  });
});

describe('an agent whose http.listen takes any port (port 0)', () => {
  it('is found by the commands at the port it took, recorded in state_dir while it runs', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'stevedore.yaml');
    await writeFile(file, testConfigYaml(dir));
    const agent = start(['run', '-c', file]);
    const portFile = path.join(dir, 'state/agent.port');
    await waitFor(() => existsSync(portFile), { timeoutMs: 15_000, what: 'the agent to listen' });
    const port = Number((await readFile(portFile, 'utf8')).trim());
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    const status = await cli(['status', '-c', file]);
    expect(status.stdout).toMatch(/^queue: 0 of \d+/);
    expect(status.code).toBe(0);
    expect((await cli(['dead-letter', 'list', '-c', file])).stdout).toBe('the dead-letter store is empty\n');

    agent.kill('SIGTERM');
    await new Promise((resolve) => agent.once('close', resolve));
    expect(existsSync(portFile)).toBe(false);
    const after = await cli(['status', '-c', file]);
    expect(after.code).toBe(1);
    expect(after.stderr).toBe(`stevedore: no agent runs on ${path.join(dir, 'state')}: none recorded the port it took for http.listen 127.0.0.1:0 (${portFile})\n`);
  });
});

describe('stevedore dead-letter', () => {
  it('through a running agent: lists, retries one once fixed (it lands), purges only what it names', async () => {
    const t = await startAgent();
    const one = await failOne(t, 'one.txt', 'first');
    const two = await failOne(t, 'two.txt', 'second');
    const file = await configFor(t);
    const listed = await cli(['dead-letter', 'list', '-c', file]);
    expect(listed.code).toBe(0);
    expect(listed.stdout.split('\n')[0]).toMatch(/^ID +TARGET +DEST +SIZE +FAILED AT +REASON$/);
    expect(listed.stdout).toContain(`${one}  box     /srv/files/one.txt`);
    await rm(path.join(t.root, 'srv/files/one.txt'), { recursive: true });
    const retried = await cli(['dead-letter', 'retry', one, '-c', file]);
    expect(retried.stdout).toMatch(/^queued again: box:\/srv\/files\/one\.txt as task \S+\n$/);
    await waitFor(async () => (await readFile(path.join(t.root, 'srv/files/one.txt'), 'utf8').catch(() => '')) === 'first', { what: 'the retried file' });
    const purged = await cli(['dead-letter', 'purge', two, '-c', file]);
    expect(purged).toMatchObject({ code: 0, stdout: `purged ${two}\n` });
    expect(await readdir(path.join(t.stateDir, 'dead-letter'))).toEqual([]);
    expect((await cli(['dead-letter', 'purge', two, '-c', file])).code).toBe(1);
    expect((await cli(['dead-letter', 'retry', '-c', file])).code).toBe(2); // neither an id nor --all
  });

  it('on a stopped agent: works on state_dir directly, and the next start pushes what was retried', async () => {
    const first = await startAgent();
    const id = await failOne(first, 'later.txt', 'kept for later');
    const file = await configFor(first);
    await first.close();
    const listed = await cli(['dead-letter', 'list', '-c', file]);
    expect(listed.stdout).toContain(id);
    await rm(path.join(first.root, 'srv/files/later.txt'), { recursive: true });
    const retried = await cli(['dead-letter', 'retry', '--all', '-c', file]);
    expect(retried.stdout).toMatch(/^queued again: box:\/srv\/files\/later\.txt as task \S+ \(pushed at the agent's next start\)\n$/);
    expect(await readdir(path.join(first.stateDir, 'dead-letter'))).toEqual([]);
    await startAgent({ dir: first.dir });
    await waitFor(async () => (await readFile(path.join(first.root, 'srv/files/later.txt'), 'utf8').catch(() => '')) === 'kept for later', { what: 'the replayed file' });
  });
});

describe('stevedore dead-letter on a stopped agent whose config lost a target', () => {
  it('retry leaves that target\'s entry in the store and says why (exit 1), as through an agent', async () => {
    const dir = await tempDir();
    const old = path.join(dir, 'old');
    const first = await startAgent({ dir, targets: `  old: { runtime: local, root: ${old} }`, http: '    - { name: old, path: /drop/old, target: old, dest: /srv/old }' });
    await mkdir(path.join(old, 'srv/old/gone.txt/in-the-way'), { recursive: true });
    const { id } = json<{ id: string }>(await send(first.url, '/drop/old/gone.txt', { body: 'x' }));
    await waitFor(async () => json<{ status: string }>(await send(first.url, `/tasks/${id}`, { method: 'GET' })).status === 'failed', { what: 'the push to fail' });
    await first.close();
    // The same state_dir, without target old.
    const file = await configFor(first);
    const retried = await cli(['dead-letter', 'retry', '--all', '-c', file]);
    expect(retried).toMatchObject({ code: 1, stdout: '' });
    expect(retried.stderr).toMatch(/^stevedore: not retried: \S+: target "old" is not configured: dead-letter entry \S+ stays\n$/);
    expect(await readdir(path.join(first.stateDir, 'dead-letter'))).toHaveLength(1);
    expect((await cli(['dead-letter', 'retry', (await readdir(path.join(first.stateDir, 'dead-letter')))[0] ?? '', '-c', file])).code).toBe(1);
    expect(await readdir(path.join(first.stateDir, 'dead-letter'))).toHaveLength(1);
  });
});

describe('stevedore dead-letter before any agent ran', () => {
  it('retry on a state_dir not made yet: an empty store, or no such entry, and nothing written', async () => {
    const dir = await tempDir();
    const port = await freePort();
    const file = path.join(dir, 'stevedore.yaml');
    await writeFile(file, testConfigYaml(dir).replace('listen: 127.0.0.1:0', `listen: 127.0.0.1:${port}`));
    expect(await cli(['dead-letter', 'retry', '--all', '-c', file])).toMatchObject({ code: 0, stdout: 'the dead-letter store is empty\n', stderr: '' });
    expect(await cli(['dead-letter', 'retry', 'AAAAAAAAAAAAAAAAAAAAAA', '-c', file])).toMatchObject({ code: 1, stderr: 'stevedore: no dead-letter entry AAAAAAAAAAAAAAAAAAAAAA\n' });
    expect(existsSync(path.join(dir, 'state'))).toBe(false);
  });
});

describe('stevedore dead-letter beside a running agent without an API', () => {
  it('refuses to touch the store behind its back', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'stevedore.yaml');
    await mkdir(path.join(dir, 'drop'));
    await writeFile(file, `version: 1\nstate_dir: ${path.join(dir, 'state')}\nlog: { level: info, format: json }\ntargets: { box: { runtime: local, root: ${path.join(dir, 'box')} } }\nwatch: [{ name: w, path: ${path.join(dir, 'drop')}, target: box, dest: /srv }]\n`);
    const agent = start(['run', '-c', file]);
    await waitFor(() => existsSync(path.join(dir, 'state/agent.pid')), { timeoutMs: 15_000, what: 'the agent to start' });
    const result = await cli(['dead-letter', 'list', '-c', file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/has no http listener to ask the agent through, but an agent \(pid \d+\) runs on .*: not touching its store behind its back\n$/);
    agent.kill('SIGTERM');
    await new Promise((resolve) => agent.once('close', resolve));
    expect((await cli(['dead-letter', 'list', '-c', file])).stdout).toBe('the dead-letter store is empty\n');
  });
});

describe('stevedore reload', () => {
  it('applies a new route under load without losing an upload, and keeps the running config when the new one is invalid', async () => {
    const dir = await tempDir();
    const port = await freePort();
    const file = path.join(dir, 'stevedore.yaml');
    const yaml = (routes: string) => testConfigYaml(dir).replace('listen: 127.0.0.1:0', `listen: 127.0.0.1:${port}`).replace('log: { level: debug, format: json }', 'log: { level: info, format: json }') + routes;
    await writeFile(file, yaml(''));
    const agent = start(['run', '-c', file]);
    const lines: Record<string, unknown>[] = [];
    createInterface({ input: agent.stdout }).on('line', (line) => lines.push(JSON.parse(line) as Record<string, unknown>));
    const url = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${url}/healthz`).catch(() => undefined))?.ok, { timeoutMs: 15_000, what: 'the agent to listen' });

    // Uploads go on while the config changes under them.
    let sending = true;
    const accepted: string[] = [];
    const load = (async () => {
      for (let i = 0; sending; i += 1) {
        const answer = await send(url, `/drop/files/load/f${i}.txt`, { body: `${i}` });
        expect(answer.status).toBe(202);
        accepted.push(`f${i}.txt`);
      }
    })();
    await waitFor(() => accepted.length >= 20, { what: 'some uploads' });
    await writeFile(file, yaml('    - { name: extra, path: /drop/extra, target: box, dest: /srv/extra }\n'));
    expect((await cli(['reload', '-c', file])).code).toBe(0);
    await waitFor(() => lines.some((l) => l.msg === 'config reloaded'), { what: 'the reload' });
    expect((await send(url, '/drop/extra/new.txt', { body: 'new route' })).status).toBe(202);

    // `stevedore reload` checks the file first and sends nothing; a bare SIGHUP (systemctl reload) is refused by the agent.
    await writeFile(file, `${yaml('')}  nonsense: [\n`);
    const checked = await cli(['reload', '-c', file]);
    expect(checked.code).toBe(2);
    expect(checked.stderr).toMatch(new RegExp(`^${file}:\\d+:\\d+: `));
    agent.kill('SIGHUP');
    const refused = await waitFor(() => lines.find((l) => String(l.msg).includes('new config is invalid')), { what: 'the refusal' });
    expect((refused.problems as string[])[0]).toMatch(new RegExp(`^${file}:\\d+:\\d+: `));
    expect((await send(url, '/drop/extra/still.txt', { body: 'still' })).status).toBe(202);
    sending = false;
    await load;

    // Every upload accepted across both reloads lands.
    const landedDir = path.join(dir, 'box/srv/files/load');
    await waitFor(async () => (await readdir(landedDir)).length >= accepted.length, { what: 'every accepted upload to land' });
    expect((await readdir(landedDir)).sort()).toEqual([...accepted].sort());
    agent.kill('SIGTERM');
    await new Promise((resolve) => agent.once('close', resolve));
    expect(await readFile(path.join(dir, 'box/srv/extra/still.txt'), 'utf8')).toBe('still');
    expect(existsSync(path.join(dir, 'state/agent.pid'))).toBe(false);
  }, 60_000);
});
