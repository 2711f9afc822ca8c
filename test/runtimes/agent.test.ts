// The whole agent against real containers: HTTP upload to landed file, and what an
// operator meets — a container stopped, a container that does not exist, the daemon
// stopped — with the file never lost. Daemon tests stop the real daemon: this project
// runs these files one at a time (vitest.config.ts).
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed, onTestFinished } from 'vitest';
import { startAgent, type TestAgent } from '../helpers/agent.js';
import { json, send } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { runtimesToTest, type RuntimeUnderTest } from './runtimes.js';

const list = await runtimesToTest();

interface TaskJson {
  id: string;
  status: string;
  attempts: number;
  error?: { code: string; message: string };
}

const upload = async (t: TestAgent, file: string, body: string, headers: Record<string, string> = {}) => {
  const answer = await send(t.url, `/drop/c/${file}`, { body, headers });
  expect(answer.status, answer.text).toBeLessThan(300);
  return json<TaskJson>(answer);
};

const task = async (t: TestAgent, id: string) => json<TaskJson>(await send(t.url, `/tasks/${id}`, { method: 'GET' }));

const finished = (t: TestAgent, id: string, timeoutMs = 60_000) =>
  waitFor(async () => {
    const current = await task(t, id);
    return current.status === 'done' || current.status === 'failed' ? current : undefined;
  }, { timeoutMs, intervalMs: 100, what: `task ${id} to finish` });

const readyz = async (t: TestAgent) => {
  const answer = await send(t.url, '/readyz', { method: 'GET' });
  return { status: answer.status, body: answer.text };
};

const metrics = async (t: TestAgent) => (await send(t.url, '/metrics', { method: 'GET' })).text;

/** The log lines the agent wrote for a task, in order: `task retrying`, `task failed`, … */
const logsOf = (t: TestAgent, id: string) => t.logs.filter((line) => line.taskId === id);

/** What an operator sees while target c is down: the log says why, /readyz and the metrics say down. */
async function expectDown(t: TestAgent, id: string): Promise<void> {
  expect(logsOf(t, id)).toContainEqual(expect.objectContaining({ msg: 'task retrying', target: 'c', error: expect.objectContaining({ code: 'TARGET_DOWN' }) }));
  const ready = await readyz(t);
  expect(ready.status).toBe(503);
  expect(ready.body).toContain('target c is down');
  const scraped = await metrics(t);
  expect(scraped).toContain('stevedore_target_up{target="c"} 0');
  expect(scraped).toMatch(/stevedore_retries_total\{target="c",reason="TARGET_DOWN"\} [1-9]/);
}

/** Once it is back: ready, up, and the files counted as done. */
async function expectUp(t: TestAgent, done: number): Promise<void> {
  expect((await readyz(t)).status).toBe(200);
  const scraped = await metrics(t);
  expect(scraped).toContain('stevedore_target_up{target="c"} 1');
  expect(scraped).toContain(`stevedore_tasks_total{source="http",target="c",outcome="done"} ${done}`);
}

describe.each(list)('$name', (runtime: RuntimeUnderTest) => {
  let container: string;
  const sh = (script: string) => runtime.sh(container, script);
  const agentFor = (name: string, exec = '') => {
    const target = runtime.target(name) as { runtime: string; container: string };
    return startAgent({
      targets: `  c: { runtime: ${target.runtime}, container: ${name} }`,
      http: `    - { name: c, path: /drop/c, target: c, dest: /srv/c${exec} }`,
    });
  };

  beforeAll(async () => {
    if (runtime.missing) throw new Error(`${runtime.name} is required under CI=true but cannot be used: ${runtime.missing}`);
    container = await runtime.create('sd-agent');
  });
  afterAll(async () => {
    if (container) await runtime.remove(container);
  });

  it('lands an HTTP upload in the container and runs the route\'s exec after it', async () => {
    const t = await agentFor(container, ', exec: [sh, -c, "ls /srv/c > /tmp/listing"]');
    const accepted = await upload(t, 'site/index.html', '<h1>hi</h1>', { Prefer: 'wait=30' });
    expect(accepted.status).toBe('done');
    expect(await sh('cat /srv/c/site/index.html; echo; cat /tmp/listing')).toBe('<h1>hi</h1>\nsite');
  });

  it('an upload through a symlink planted below the route\'s dest is refused (dead-letter), nothing lands outside, its batch-mates land', async () => {
    const t = await agentFor(container);
    await sh('mkdir -p /srv/c /escaped && ln -sfn /escaped /srv/c/planted');
    const [evil, fine] = await Promise.all([upload(t, 'planted/pwned.txt', 'x'), upload(t, 'beside/fine.txt', 'fine')]);
    const [refused, landed] = await Promise.all([finished(t, evil.id), finished(t, fine.id)]);
    expect(refused).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'DEST_UNSAFE', message: expect.stringContaining('leads outside /srv/c through a symlink') } });
    expect(landed.status).toBe('done');
    expect(await sh('ls -A /escaped | wc -l; cat /srv/c/beside/fine.txt')).toBe('0\nfine');
    const entries = json<{ entries: { id: string; has_data: boolean }[] }>(await send(t.url, '/dead-letter', { method: 'GET' })).entries;
    expect(entries).toContainEqual(expect.objectContaining({ id: evil.id, has_data: true }));
  });

  it('the container\'s disk full: retried, then dead-lettered with its data and a clear log line; /readyz stays 200; lands once space frees', async () => {
    const full = await runtime.createWithSmallDisk('sd-full', '/srv/c', '3m');
    onTestFinished(() => runtime.remove(full));
    await runtime.sh(full, 'dd if=/dev/zero of=/srv/c/filler bs=1024 count=2600 2>/dev/null');
    const t = await agentFor(full);
    const [small, big] = await Promise.all([upload(t, 'small.txt', 'fits'), upload(t, 'big.bin', 'x'.repeat(1 << 20))]);
    expect(await finished(t, small.id)).toMatchObject({ status: 'done' });
    expect(await finished(t, big.id)).toMatchObject({ status: 'failed', attempts: 3, error: { code: 'TARGET_FULL', message: expect.stringContaining('out of space') } });
    const lines = logsOf(t, big.id).filter((line) => line.error !== undefined);
    expect(lines.map((line) => [line.msg, (line.error as { code: string }).code]), JSON.stringify(lines.map((line) => line.error))).toEqual([
      ['task retrying', 'TARGET_FULL'], ['task retrying', 'TARGET_FULL'], ['task failed', 'TARGET_FULL'],
    ]);
    expect(lines.at(-1)).toMatchObject({ target: 'c', dest: '/srv/c/big.bin', error: { message: expect.stringContaining('No space left on device') } });
    expect((await readyz(t)).status).toBe(200); // the target answers; other paths may have room
    const scraped = await metrics(t);
    expect(scraped).toContain('stevedore_retries_total{target="c",reason="TARGET_FULL"} 2');
    expect(scraped).toContain('stevedore_tasks_total{source="http",target="c",outcome="failed"} 1');
    expect(scraped).toContain('stevedore_dead_letter{target="c"} 1');
    expect(scraped).toContain('stevedore_target_up{target="c"} 1');
    expect(await runtime.sh(full, 'ls -A /srv/c')).toBe('filler\nsmall.txt'); // no part of big.bin, no staging directory

    await runtime.sh(full, 'rm /srv/c/filler'); // the operator frees space
    const retried = json<TaskJson>(await send(t.url, `/dead-letter/${big.id}/retry`, { method: 'POST' }));
    expect(await finished(t, retried.id)).toMatchObject({ status: 'done' });
    expect(await runtime.sh(full, 'wc -c < /srv/c/big.bin')).toBe(String(1 << 20));
  });

  it('waits for a stopped container without spending attempts, says so in /readyz, then lands', async () => {
    const t = await agentFor(container);
    await runtime.stop(container);
    const ids = await Promise.all(['a', 'b', 'c'].map(async (name) => (await upload(t, `stopped/${name}.txt`, name)).id));
    await waitFor(async () => (await task(t, ids[0] as string)).status === 'retrying', { timeoutMs: 20_000, what: 'a failed push' });
    await expectDown(t, ids[0] as string);
    await new Promise((resolve) => setTimeout(resolve, 2500)); // a few more probes of the stopped container
    // Read between probes: a push in flight counts its attempt until it is found down.
    const waiting = await waitFor(async () => {
      const tasks = await Promise.all(ids.map((id) => task(t, id)));
      return tasks.every((x) => x.status === 'retrying') ? tasks : undefined;
    }, { timeoutMs: 20_000, what: 'all three tasks waiting' });
    expect(waiting.map((x) => [x.attempts, x.error?.code])).toEqual([[0, 'TARGET_DOWN'], [0, 'TARGET_DOWN'], [0, 'TARGET_DOWN']]);
    await runtime.start(container);
    const done = await Promise.all(ids.map((id) => finished(t, id)));
    expect(done.map((x) => [x.status, x.attempts])).toEqual([['done', 1], ['done', 1], ['done', 1]]);
    expect(await sh('cat /srv/c/stopped/a.txt /srv/c/stopped/b.txt /srv/c/stopped/c.txt')).toBe('abc');
    await expectUp(t, 3);
  });

  it('dead-letters a task for a container that does not exist, keeping the file', async () => {
    const t = await agentFor('stevedore-no-such-container');
    const { id } = await upload(t, 'lost.txt', 'keep me');
    const failed = await finished(t, id);
    expect(failed).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'TARGET_NOT_FOUND' } });
    const entry = path.join(t.stateDir, 'dead-letter', id);
    expect(await readFile(path.join(entry, 'data'), 'utf8')).toBe('keep me');
    expect(await readFile(path.join(entry, 'reason.txt'), 'utf8')).toContain('no such container');
  });

  // Podman has no daemon to stop: each command is its own process.
  if (runtime.daemon) it('waits while the daemon is stopped, then lands once it is back', async () => {
    const t = await agentFor(container);
    await runtime.daemon?.stop();
    try {
      const { id } = await upload(t, 'daemon/x.txt', 'after the restart');
      await waitFor(async () => (await task(t, id)).status === 'retrying', { timeoutMs: 20_000, what: 'a failed push' });
      expect((await task(t, id)).error?.code).toBe('TARGET_DOWN');
      await expectDown(t, id);
      await runtime.daemon?.start();
      // Docker stops its containers when its daemon stops; Incus keeps them running.
      await runtime.start(container).catch(() => undefined);
      expect(await finished(t, id)).toMatchObject({ status: 'done', attempts: 1 });
      expect(await sh('cat /srv/c/daemon/x.txt')).toBe('after the restart');
      expect(existsSync(path.join(t.stateDir, 'dead-letter', id))).toBe(false);
      await expectUp(t, 1);
    } finally {
      await runtime.daemon?.start();
    }
  });

  it('a container deleted: its tasks go to dead-letter with their data, and land once it is re-created and they are retried', async () => {
    const name = `sd-gone-${container.slice(-8)}`;
    await runtime.create('unused', undefined, name);
    const t = await agentFor(name);
    await runtime.remove(name);
    const ids = await Promise.all(['a', 'b'].map(async (file) => (await upload(t, `gone/${file}.txt`, `kept ${file}`)).id));
    for (const id of ids) expect(await finished(t, id)).toMatchObject({ status: 'failed', error: { code: 'TARGET_NOT_FOUND' } });
    for (const id of ids) expect(logsOf(t, id).at(-1)).toMatchObject({ msg: 'task failed', level: 50, target: 'c', error: { message: expect.stringContaining(name) } });
    // Not down (nothing to wait for): the agent stays ready, and the metrics count two dead letters.
    expect((await readyz(t)).status).toBe(200);
    const scraped = await metrics(t);
    expect(scraped).toContain('stevedore_tasks_total{source="http",target="c",outcome="failed"} 2');
    expect(scraped).toContain('stevedore_dead_letter{target="c"} 2');
    await runtime.create('unused', undefined, name);
    try {
      const retried = json<{ tasks: { id: string }[]; skipped: unknown[] }>(await send(t.url, '/dead-letter/retry', { method: 'POST' }));
      expect(retried.skipped).toEqual([]);
      for (const { id } of retried.tasks) expect((await finished(t, id)).status).toBe('done');
      expect(await runtime.sh(name, 'cat /srv/c/gone/a.txt; echo; cat /srv/c/gone/b.txt')).toBe('kept a\nkept b');
      await expectUp(t, 2);
      expect(await metrics(t)).toContain('stevedore_dead_letter{target="c"} 0');
    } finally {
      await runtime.remove(name);
    }
  });

  // Podman has no daemon to hang.
  if (runtime.daemon) it('a daemon that hangs: the push is killed at push_timeout and retried, and lands once the daemon answers', async () => {
    const t = await agentFor(container, ', push_timeout: 1s, retry: { attempts: 20, initial_delay: 100ms, max_delay: 500ms }');
    // The agent's log tells what the push was doing if it fails again (it showed a push
    // left unbounded: the timeout signal collected before it fired, see src/deadline.ts).
    // eslint-disable-next-line no-console -- the log of a failed run, for its diagnosis
    onTestFailed(() => console.log(`agent log of the failed hang test:\n${t.logs.map((line) => JSON.stringify(line)).join('\n')}`));
    await runtime.daemon?.freeze();
    let id = '';
    try {
      id = (await upload(t, 'hung/x.txt', 'after the hang')).id;
      // The log line, not the task: it is `retrying` for only the backoff before the next try.
      const killed = () => logsOf(t, id).find((line) => line.msg === 'task retrying' && (line.error as { code?: string } | undefined)?.code === 'PUSH_TIMEOUT');
      expect(await waitFor(killed, { timeoutMs: 30_000, what: 'a push killed at its timeout' })).toMatchObject({ target: 'c', dest: '/srv/c/hung/x.txt' });
      // A hang looks like a slow push: not down, so /readyz stays 200; attempts are spent.
      expect((await readyz(t)).status).toBe(200);
      expect(await metrics(t)).toMatch(/stevedore_retries_total\{target="c",reason="PUSH_TIMEOUT"\} [1-9]/);
    } finally {
      await runtime.daemon?.thaw();
    }
    expect(await finished(t, id)).toMatchObject({ status: 'done' });
    expect(await sh('cat /srv/c/hung/x.txt')).toBe('after the hang');
    await expectUp(t, 1);
  });

  // Podman has no daemon to crash.
  if (runtime.daemon) it('the daemon killed (SIGKILL) mid-burst, then started: every upload lands', async () => {
    const t = await agentFor(container);
    const ids: string[] = [];
    const burst = Promise.all(Array.from({ length: 30 }, async (_, i) => ids.push((await upload(t, `crash/f${i}.txt`, `file ${i}`)).id)));
    await new Promise((resolve) => setTimeout(resolve, 50));
    await runtime.daemon?.kill();
    try {
      await burst;
      await runtime.daemon?.start();
      await runtime.start(container).catch(() => undefined); // Docker's containers stop with their daemon
      for (const id of ids) expect((await finished(t, id, 120_000)).status).toBe('done');
      expect(await runtime.sh(container, 'ls /srv/c/crash | wc -l')).toBe('30');
      expect(t.logs.filter((line) => line.msg === 'task retrying' && (line.error as { code?: string } | undefined)?.code === 'TARGET_DOWN').length).toBeGreaterThan(0);
      await expectUp(t, 30);
    } finally {
      await runtime.daemon?.start();
    }
  });
});
