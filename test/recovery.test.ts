// End to end across restarts: one state dir, two agents one after the other.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createAgent } from '../src/agent.js';
import { parseConfig } from '../src/config/load.js';
import type { TaskRecord } from '../src/task.js';
import { createJournal, type JournalEntry } from '../src/spool/journal.js';
import { startAgent, type TestAgent } from './helpers/agent.js';
import { createTestTarget, wrapTargets } from './helpers/targets.js';
import { tempDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

// A route whose tasks keep retrying for a long while (appended to the helper's routes).
const SLOW_ROUTE = '    - { name: slow, path: /drop/slow, target: box, dest: /srv/slow, retry: { attempts: 1000, initial_delay: 10ms, max_delay: 20ms } }';
// Every push fails transiently, as if the runtime kept timing out.
const flaky = wrapTargets((real) => createTestTarget({ name: real.name, fail: { code: 'TARGET_IO', message: 'runtime timed out' } }));

type Json = Record<string, unknown>;

async function put(t: TestAgent, urlPath: string, body: string | Buffer): Promise<Json> {
  const res = await fetch(`${t.url}${urlPath}`, { method: 'PUT', body });
  expect(res.status).toBe(202);
  return (await res.json()) as Json;
}

const getTask = async (t: TestAgent, id: unknown) => (await (await fetch(`${t.url}/tasks/${String(id)}`)).json()) as Json;
const spoolFiles = (t: TestAgent) => readdir(path.join(t.stateDir, 'spool'));

/** The records the journal file holds, without opening (and so compacting) it. */
async function journaledAdds(stateDir: string): Promise<TaskRecord[]> {
  const text = await readFile(path.join(stateDir, 'journal.log'), 'utf8');
  const entries = text.split('\n').filter(Boolean).map((line) => JSON.parse(line) as JournalEntry);
  return entries.flatMap((e) => (e.op === 'add' ? [e.task] : []));
}

/** Opens the journal the way the next start would; returns what is still live and the file after compaction. */
async function reopenJournal(stateDir: string) {
  const file = path.join(stateDir, 'journal.log');
  const journal = createJournal({ file, syncDirs: [], logger: pino({ level: 'silent' }) });
  const live = await journal.open();
  await journal.close();
  return { live, text: await readFile(file, 'utf8') };
}

/** Starts an agent whose pushes all fail, uploads `files`, waits until each failed at least twice, stops it. */
async function leaveUnfinished(dir: string, files: Record<string, string>): Promise<Json[]> {
  const first = await startAgent({ dir, http: SLOW_ROUTE, createTarget: flaky });
  const tasks: Json[] = [];
  for (const [name, body] of Object.entries(files)) tasks.push(await put(first, `/drop/slow/${name}`, body));
  await waitFor(() => tasks.every((t) => (first.agent.registry.get(String(t.id))?.attempts ?? 0) >= 2), { what: 'failed attempts' });
  await first.close();
  return tasks;
}

describe('crash recovery', () => {
  it('pushes the tasks an earlier run left journaled, then empties the spool and the journal', async () => {
    const dir = await tempDir();
    const files = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`f${i}.txt`, `content ${i} ${randomBytes(8).toString('hex')}`]));
    const tasks = await leaveUnfinished(dir, files);
    const stateDir = path.join(dir, 'state');
    expect(await readdir(path.join(stateDir, 'spool'))).toHaveLength(5);
    expect((await journaledAdds(stateDir)).map((r) => r.id).sort()).toEqual(tasks.map((t) => t.id).sort());

    const second = await startAgent({ dir, http: SLOW_ROUTE });
    for (const [name, body] of Object.entries(files)) {
      const landed = path.join(second.root, 'srv/slow', name);
      await waitFor(() => readFile(landed, 'utf8').then((text) => text === body, () => false), { what: `${name} to land` });
    }
    for (const task of tasks) await waitFor(async () => (await getTask(second, task.id)).status === 'done', { what: 'done' });
    expect((await getTask(second, tasks[0]?.id)).attempts).toBe(1);
    await waitFor(async () => (await spoolFiles(second)).length === 0, { what: 'the spool to empty' });
    await second.close();
    expect(await reopenJournal(stateDir)).toEqual({ live: [], text: '' });
  });

  it('removes a partial orphan file from the spool at start', async () => {
    const dir = await tempDir();
    await mkdir(path.join(dir, 'state/spool'), { recursive: true });
    await writeFile(path.join(dir, 'state/spool/Zm9vYmFyYmF6cXV4.staged'), 'half an upl');
    const t = await startAgent({ dir });
    expect(await spoolFiles(t)).toEqual([]);
    expect(t.logs.find((l) => l.msg === 'recovered the journal')).toMatchObject({ requeued: 0, orphansRemoved: 1 });
  });

  it('dead-letters a push that failed for good, with the exact bytes, the task and the reason', async () => {
    const t = await startAgent();
    await mkdir(path.join(t.root, 'srv/files/taken.bin'), { recursive: true });
    const data = randomBytes(200_000);
    const task = await put(t, '/drop/files/taken.bin', data);
    const failed = await waitFor(async () => {
      const body = await getTask(t, task.id);
      return body.status === 'failed' ? body : undefined;
    });
    expect(failed).toMatchObject({ attempts: 1, error: { code: 'DEST_IS_DIR' } });

    const entry = path.join(t.stateDir, 'dead-letter', String(task.id));
    expect((await readFile(path.join(entry, 'data'))).equals(data)).toBe(true);
    const saved = JSON.parse(await readFile(path.join(entry, 'task.json'), 'utf8')) as Json;
    expect(saved).toMatchObject({ id: task.id, status: 'failed', dest: '/srv/files/taken.bin', error: { code: 'DEST_IS_DIR' } });
    expect((await readFile(path.join(entry, 'reason.txt'), 'utf8')).trim()).not.toBe('');
    await waitFor(async () => (await spoolFiles(t)).length === 0, { what: 'the staged file to go' });
    await t.close();
    expect((await reopenJournal(t.stateDir)).live).toEqual([]);
  });

  it('dead-letters a journaled task whose staged file vanished (STAGED_MISSING) and goes on', async () => {
    const dir = await tempDir();
    const [lost, kept] = await leaveUnfinished(dir, { 'lost.txt': 'will vanish', 'kept.txt': 'still here' });
    const stateDir = path.join(dir, 'state');
    const record = (await journaledAdds(stateDir)).find((r) => r.id === lost?.id);
    await rm(path.join(stateDir, 'spool', String(record?.staged)));

    const second = await startAgent({ dir, http: SLOW_ROUTE });
    const entry = path.join(stateDir, 'dead-letter', String(lost?.id));
    const saved = JSON.parse(await readFile(path.join(entry, 'task.json'), 'utf8')) as Json;
    expect(saved).toMatchObject({ id: lost?.id, status: 'failed', error: { code: 'STAGED_MISSING' } });
    expect(await readFile(path.join(entry, 'reason.txt'), 'utf8')).toMatch(/staged file/);
    expect(await readdir(entry)).not.toContain('data');
    expect((await fetch(`${second.url}/healthz`)).status).toBe(200);
    await waitFor(async () => (await getTask(second, kept?.id)).status === 'done', { what: 'the other task to land' });
    expect(await readFile(path.join(second.root, 'srv/slow/kept.txt'), 'utf8')).toBe('still here');
    await second.close();
    expect((await reopenJournal(stateDir)).live).toEqual([]);
  });

  it('a crash between moving a file into dead-letter and writing its task.json: the entry is completed at start, listed and replayable', async () => {
    const dir = await tempDir();
    const [task] = await leaveUnfinished(dir, { 'half.txt': 'moved, not described' });
    const stateDir = path.join(dir, 'state');
    const record = (await journaledAdds(stateDir)).find((r) => r.id === task?.id);
    const entry = path.join(stateDir, 'dead-letter', String(task?.id));
    await mkdir(entry, { recursive: true });
    await rename(path.join(stateDir, 'spool', String(record?.staged)), path.join(entry, 'data')); // what put() does first

    const second = await startAgent({ dir, http: SLOW_ROUTE });
    const listed = (await (await fetch(`${second.url}/dead-letter`)).json()) as { entries: Json[] };
    expect(listed.entries).toMatchObject([{ id: task?.id, dest: '/srv/slow/half.txt', has_data: true, reason: expect.stringContaining('first reason is lost') }]);
    const retried = (await (await fetch(`${second.url}/dead-letter/${String(task?.id)}/retry`, { method: 'POST' })).json()) as Json;
    await waitFor(async () => (await getTask(second, retried.id)).status === 'done', { what: 'the replay to land' });
    expect(await readFile(path.join(second.root, 'srv/slow/half.txt'), 'utf8')).toBe('moved, not described');
    await second.close();
  });

  it('dead-letters a journaled task whose staged file was cut short, keeping what is left', async () => {
    const dir = await tempDir();
    const [cut] = await leaveUnfinished(dir, { 'cut.txt': 'twenty-one bytes long' });
    const stateDir = path.join(dir, 'state');
    const [record] = await journaledAdds(stateDir);
    await writeFile(path.join(stateDir, 'spool', String(record?.staged)), 'twenty');

    const second = await startAgent({ dir, http: SLOW_ROUTE });
    const entry = path.join(stateDir, 'dead-letter', String(cut?.id));
    expect(JSON.parse(await readFile(path.join(entry, 'task.json'), 'utf8'))).toMatchObject({ error: { code: 'STAGED_CORRUPT' } });
    expect(await readFile(path.join(entry, 'data'), 'utf8')).toBe('twenty');
    expect(await spoolFiles(second)).toEqual([]);
    expect(await readdir(second.root).catch(() => [])).toEqual([]);
  });
});

describe('recovery, config changed meanwhile', () => {
  it('a journaled task for a target the config no longer has goes to dead-letter, not waiting forever', async () => {
    const dir = await tempDir();
    const [task] = await leaveUnfinished(dir, { 'orphan.txt': 'no target any more' });
    const config = parseConfig(`version: 1\nstate_dir: ${path.join(dir, 'state')}\ntargets: { other: { runtime: local, root: ${path.join(dir, 'other')} } }\n`, path.join(dir, 'next.yaml'), {});
    const agent = createAgent(config, { logger: pino({ level: 'silent' }) });
    await agent.start();
    try {
      expect(agent.registry.get(String(task?.id))).toMatchObject({ status: 'failed', error: { code: 'TARGET_UNKNOWN' } });
      const entry = path.join(dir, 'state/dead-letter', String(task?.id));
      expect(await readFile(path.join(entry, 'data'), 'utf8')).toBe('no target any more');
      expect(await readFile(path.join(entry, 'reason.txt'), 'utf8')).toBe('target "box" is no longer configured\n');
    } finally {
      await agent.close();
    }
  });
});
