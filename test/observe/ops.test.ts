// The operator's endpoints against a real agent on loopback: /metrics, /status and the
// dead-letter API, with failures made for real (a directory in the way in the local
// target's root) and a target scripted down.
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { StevedoreError } from '../../src/errors.js';
import { failed } from '../../src/targets/target.js';
import { startAgent, type TestAgent } from '../helpers/agent.js';
import { json, open, send } from '../helpers/http.js';
import { scriptedTarget } from '../helpers/targets.js';
import { tempDir } from '../helpers/temp.js';
import { waitFor } from '../helpers/wait.js';

interface TaskJson {
  id: string;
  status: string;
  target: string;
  dest: string;
  error?: { code: string };
}

const get = (t: TestAgent, urlPath: string, headers: Record<string, string> = {}) => send(t.url, urlPath, { method: 'GET', headers });

async function finished(t: TestAgent, id: string): Promise<TaskJson> {
  return waitFor(async () => {
    const task = json<TaskJson>(await get(t, `/tasks/${id}`));
    return task.status === 'done' || task.status === 'failed' ? task : undefined;
  }, { what: `task ${id} to finish` });
}

/** Uploads to the `files` route (dest /srv/files) and waits for the end. */
async function upload(t: TestAgent, rel: string, body: string): Promise<TaskJson> {
  const answer = await send(t.url, `/drop/files/${rel}`, { body });
  expect(answer.status).toBe(202);
  return finished(t, json<TaskJson>(answer).id);
}

/** A directory where the file should land: a permanent DEST_IS_DIR. */
const blockWithDirectory = (t: TestAgent, rel: string) => mkdir(path.join(t.root, 'srv/files', rel, 'inside'), { recursive: true });

const sample = (metrics: string, name: string) => {
  const line = metrics.split('\n').find((l) => l.startsWith(name));
  return line === undefined ? undefined : Number(line.slice(name.length).trim());
};

describe('GET /metrics', () => {
  it('counts tasks by outcome, bytes in and out, dead-letter, and carries Node\'s process metrics', async () => {
    const t = await startAgent();
    // Every configured target has its dead-letter series from the start, at 0.
    expect(sample((await get(t, '/metrics')).text, 'stevedore_dead_letter{target="box"}')).toBe(0);
    await blockWithDirectory(t, 'blocked.txt');
    expect((await upload(t, 'ok.txt', 'twelve bytes')).status).toBe('done');
    expect((await upload(t, 'blocked.txt', 'x')).status).toBe('failed');
    const answer = await get(t, '/metrics');
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = answer.text;
    expect(sample(text, 'stevedore_tasks_total{source="http",target="box",outcome="done"}')).toBe(1);
    expect(sample(text, 'stevedore_tasks_total{source="http",target="box",outcome="failed"}')).toBe(1);
    expect(sample(text, 'stevedore_ingest_bytes_total{source="http"}')).toBe(13);
    expect(sample(text, 'stevedore_bytes_pushed_total{target="box"}')).toBe(12);
    expect(sample(text, 'stevedore_dead_letter{target="box"}')).toBe(1);
    expect(sample(text, 'stevedore_queue_depth')).toBe(0);
    expect(sample(text, 'stevedore_in_flight')).toBe(0);
    expect(sample(text, 'stevedore_target_up{target="box"}')).toBe(1);
    expect(sample(text, 'stevedore_push_duration_seconds_count{target="box"}')).toBe(2);
    expect(sample(text, 'stevedore_spool_free_bytes')).toBeGreaterThan(0);
    expect(text).toContain('process_resident_memory_bytes');
    expect(text).toContain('nodejs_eventloop_lag_seconds');
  });

  it('reports a target down, retries by reason, and /status says since when and why', async () => {
    let down = true;
    const createTarget = scriptedTarget(async (items, signal, real) =>
      down ? items.map(() => failed(new StevedoreError('TARGET_DOWN', 'scripted: daemon not running'))) : real.push(items, signal));
    const t = await startAgent({ createTarget });
    const accepted = json<TaskJson>(await send(t.url, '/drop/files/later.txt', { body: 'later' }));
    await waitFor(async () => json<TaskJson>(await get(t, `/tasks/${accepted.id}`)).status === 'retrying', { what: 'the first failed push' });
    const text = (await get(t, '/metrics')).text;
    expect(sample(text, 'stevedore_target_up{target="box"}')).toBe(0);
    expect(sample(text, 'stevedore_retries_total{target="box",reason="TARGET_DOWN"}')).toBeGreaterThanOrEqual(1);
    const status = json<{ targets: { name: string; up: boolean; since?: string; last_error?: { code: string }; queued: number }[]; queue: { depth: number } }>(await get(t, '/status'));
    expect(status.queue.depth).toBe(1);
    expect(status.targets.find((x) => x.name === 'box')).toMatchObject({ up: false, since: expect.any(String), last_error: { code: 'TARGET_DOWN' }, queued: 1 });
    down = false;
    expect((await finished(t, accepted.id)).status).toBe('done');
    expect(json<{ targets: { name: string; up: boolean }[] }>(await get(t, '/status')).targets.find((x) => x.name === 'box')?.up).toBe(true);
  });
});

describe('GET /status', () => {
  it('answers queue, targets, watches, recent failures, dead-letter and spool use', async () => {
    const dir = await tempDir();
    await mkdir(path.join(dir, 'inbox/sub'), { recursive: true });
    const t = await startAgent({ dir, extra: `watch: [{ name: inbox, path: ${path.join(dir, 'inbox')}, target: box, dest: /srv/in, initial: false }]` });
    await blockWithDirectory(t, 'no.txt');
    const failedTask = await upload(t, 'no.txt', 'x');
    const status = json<Record<string, unknown>>(await get(t, '/status'));
    expect(status).toMatchObject({
      queue: { depth: 0, capacity: expect.any(Number), in_flight: 0 },
      targets: [{ name: 'box', runtime: 'local', up: true, queued: 0, pushing: 0, dead_letter: 1, last_error: { code: 'DEST_IS_DIR' } }],
      recent_failures: [{ id: failedTask.id, target: 'box', dest: '/srv/files/no.txt', code: 'DEST_IS_DIR' }],
      watches: [{ name: 'inbox', mode: 'drop', state: 'watching', pending: 0, paths: 2 }], // the folder and sub/
      dead_letter: 1,
      spool: { files: 0, bytes: 0, free_bytes: expect.any(Number) },
    });
  });

  it('with http.admin_token, /metrics, /status and /dead-letter want it; uploads keep their own tokens', async () => {
    const t = await startAgent({ http: '  admin_token: ops-secret' });
    for (const urlPath of ['/metrics', '/status', '/dead-letter']) {
      expect((await get(t, urlPath)).status).toBe(401);
      expect((await get(t, urlPath, { authorization: 'Bearer wrong' })).status).toBe(401);
      expect((await get(t, urlPath, { authorization: 'Bearer ops-secret' })).status).toBe(200);
    }
    expect((await send(t.url, '/drop/files/a.txt', { body: 'a' })).status).toBe(202);
  });
});

describe('the dead-letter API', () => {
  it('lists entries, retries one once its cause is fixed (it lands, the entry is gone), and purges only what it names', async () => {
    const t = await startAgent();
    await blockWithDirectory(t, 'one.txt');
    await blockWithDirectory(t, 'two.txt');
    const one = await upload(t, 'one.txt', 'first');
    const two = await upload(t, 'two.txt', 'second');
    const listed = json<{ entries: { id: string; dest: string; has_data: boolean; reason: string }[] }>(await get(t, '/dead-letter'));
    expect(listed.entries.map((e) => [e.id, e.dest, e.has_data])).toEqual([[one.id, '/srv/files/one.txt', true], [two.id, '/srv/files/two.txt', true]]);
    expect(listed.entries[0]?.reason).toContain('directory');

    await rm(path.join(t.root, 'srv/files/one.txt'), { recursive: true }); // the operator fixes the cause
    const retried = json<TaskJson>(await send(t.url, `/dead-letter/${one.id}/retry`, { method: 'POST' }));
    expect(retried).toMatchObject({ status: expect.stringMatching(/^(queued|pushing)$/), dest: '/srv/files/one.txt' });
    expect(retried.id).not.toBe(one.id);
    expect((await finished(t, retried.id)).status).toBe('done');
    expect(await readFile(path.join(t.root, 'srv/files/one.txt'), 'utf8')).toBe('first');
    expect(existsSync(path.join(t.stateDir, 'dead-letter', one.id))).toBe(false);

    expect((await send(t.url, `/dead-letter/${two.id}`, { method: 'DELETE' })).status).toBe(200);
    expect(await readdir(path.join(t.stateDir, 'dead-letter'))).toEqual([]);
    expect((await send(t.url, `/dead-letter/${two.id}`, { method: 'DELETE' })).status).toBe(404);
    expect((await send(t.url, '/dead-letter/retry', { method: 'POST' })).text).toBe('{"tasks":[],"skipped":[]}\n');
  });

  it('a retry leaves alone an entry whose target is no longer configured: it would wait for it forever', async () => {
    const dir = await tempDir();
    const old = { targets: `  old: { runtime: local, root: ${path.join(dir, 'old')} }`, http: '    - { name: old, path: /drop/old, target: old, dest: /srv/old }' };
    const first = await startAgent({ dir, ...old });
    await mkdir(path.join(dir, 'old/srv/old/a.txt/inside'), { recursive: true });
    const lost = await finished(first, json<TaskJson>(await send(first.url, '/drop/old/a.txt', { body: 'for old' })).id);
    await blockWithDirectory(first, 'b.txt');
    const other = await upload(first, 'b.txt', 'for box');
    expect([lost.status, other.status]).toEqual(['failed', 'failed']);
    await first.close();

    const t = await startAgent({ dir }); // `old` is gone from the config
    await rm(path.join(t.root, 'srv/files/b.txt'), { recursive: true });
    const one = await send(t.url, `/dead-letter/${lost.id}/retry`, { method: 'POST' });
    expect(one.status).toBe(400);
    expect(json<{ error: { message: string } }>(one).error.message).toContain('"old" is not configured');
    const all = json<{ tasks: TaskJson[]; skipped: { id: string; reason: string }[] }>(await send(t.url, '/dead-letter/retry', { method: 'POST' }));
    expect(all.skipped.map((s) => s.id)).toEqual([lost.id]);
    expect(all.tasks.map((task) => task.dest)).toEqual(['/srv/files/b.txt']);
    expect((await finished(t, all.tasks[0]?.id ?? '')).status).toBe('done');
    expect((await get(t, '/readyz')).status).toBe(200);
    expect(json<{ entries: { id: string }[] }>(await get(t, '/dead-letter')).entries.map((e) => e.id)).toEqual([lost.id]);
  });

  it('without admin_token: changes refused on a non-loopback listener and from a browser page; reads need allow_anonymous there', async () => {
    const open = await startAgent({ listen: '0.0.0.0:0', http: '  allow_anonymous: true' });
    expect((await get(open, '/status')).status).toBe(200);
    expect((await get(open, '/dead-letter')).status).toBe(200);
    const refused = await send(open.url, '/dead-letter/retry', { method: 'POST' });
    expect(refused.status).toBe(403);
    expect(json<{ error: { code: string; message: string } }>(refused).error.message).toContain('admin_token');
    const local = await startAgent();
    expect((await send(local.url, '/dead-letter/retry', { method: 'POST', headers: { origin: 'https://evil.example' } })).status).toBe(403);
    expect((await send(local.url, '/dead-letter/retry', { method: 'POST' })).status).toBe(200);
  });

  it('refuses wrong methods and unknown paths with the SPEC\'s JSON errors', async () => {
    const t = await startAgent();
    expect((await send(t.url, '/dead-letter', { method: 'POST' })).status).toBe(405);
    expect((await send(t.url, '/dead-letter/AAAAAAAAAAAAAAAAAAAAAA/retry', { method: 'GET' })).status).toBe(405);
    expect((await send(t.url, '/dead-letter/AAAAAAAAAAAAAAAAAAAAAA/retry', { method: 'POST' })).status).toBe(404);
    expect((await send(t.url, '/dead-letter/x/y/z', { method: 'POST' })).status).toBe(404);
    expect((await send(t.url, '/metrics', { method: 'POST' })).status).toBe(405);
  });
});

describe('a large upload in progress', () => {
  it('is announced by 103 Early Hints linking its task, which reports the bytes received so far, then keeps that id', async () => {
    const t = await startAgent({ http: '  max_body: 64MiB' });
    const size = 9 * 2 ** 20;
    const upload = open(t.url, '/drop/files/big.bin', { headers: { 'content-length': size } });
    const link = new Promise<string>((resolve) => upload.req.once('information', (info) => resolve(String(info.headers.link))));
    upload.req.write(Buffer.alloc(4 * 2 ** 20, 1));
    const announced = await link;
    const id = /^<\/tasks\/([A-Za-z0-9_-]{22})>; rel="monitor"$/.exec(announced)?.[1] as string;
    expect(id).toBeDefined();
    const midway = await waitFor(async () => {
      const task = json<{ status: string; bytes_received: number; bytes_expected: number; dest: string }>(await get(t, `/tasks/${id}`));
      return task.bytes_received >= 4 * 2 ** 20 ? task : undefined;
    }, { what: 'the first 4 MiB to be counted' });
    expect(midway).toMatchObject({ status: 'receiving', bytes_received: 4 * 2 ** 20, bytes_expected: size, dest: '/srv/files/big.bin' });
    upload.req.end(Buffer.alloc(size - 4 * 2 ** 20, 2));
    const answer = await upload.answer;
    expect(answer.status).toBe(202);
    expect(json<TaskJson>(answer).id).toBe(id);
    expect((await finished(t, id)).status).toBe('done');
  });

  it('small uploads get no early answer', async () => {
    const t = await startAgent();
    const upload = open(t.url, '/drop/files/small.txt', { headers: { 'content-length': 5 } });
    let informed = false;
    upload.req.once('information', () => (informed = true));
    upload.req.end('small');
    expect((await upload.answer).status).toBe(202);
    expect(informed).toBe(false);
  });
});
