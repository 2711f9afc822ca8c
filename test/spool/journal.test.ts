import { appendFile, chmod, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { TaskRecord } from '../../src/task.js';
import { createJournal, type JournalEntry } from '../../src/spool/journal.js';
import { receive } from '../../src/spool/receive.js';
import { createSpool } from '../../src/spool/spool.js';
import { startAgent } from '../helpers/agent.js';
import { createTestTarget, wrapTargets, type TestTarget } from '../helpers/targets.js';
import { tempDir } from '../helpers/temp.js';

const logger = pino({ level: 'silent' });
let seq = 0;

function record(id = `task-${(seq += 1)}`): TaskRecord {
  return {
    id,
    kind: 'put',
    source: 'http',
    route: 'files',
    target: 'box',
    dest: `/srv/${id}`,
    bytes: 3,
    sha256: 'ab'.repeat(32),
    staged: `${id}.staged`,
    createdAt: '2025-01-01T00:00:00.000Z',
    options: { mode: 0o644, dirMode: 0o755, retry: { attempts: 3, initialDelay: 10, maxDelay: 50 }, pushTimeout: 1000 },
  };
}

const add = (task: TaskRecord): JournalEntry => ({ op: 'add', task });

async function journalIn(dir?: string, compactAfter?: number) {
  const file = path.join(dir ?? (await tempDir()), 'journal.log');
  const open = async () => {
    const journal = createJournal({ file, syncDirs: [path.dirname(file)], logger, compactAfter });
    return { journal, live: await journal.open() };
  };
  const lines = async () => (await readFile(file, 'utf8')).split('\n').filter(Boolean);
  return { file, open, lines };
}

describe('journal', () => {
  it('keeps a task live from add until done or dead, across a re-open', async () => {
    const j = await journalIn();
    const first = await j.open();
    expect(first.live).toEqual([]);
    const [a, b, c] = [record(), record(), record()];
    await first.journal.append(add(a), add(b));
    await first.journal.append(add(c));
    await first.journal.append({ op: 'done', id: a.id });
    await first.journal.append({ op: 'dead', id: b.id });
    expect(first.journal.liveCount).toBe(1);
    await first.journal.close();

    const second = await j.open();
    expect(second.live).toEqual([c]);
    expect(second.journal.liveCount).toBe(1);
    await second.journal.close();
    expect((await stat(j.file)).mode & 0o777).toBe(0o600);
  });

  it('group-commits concurrent appends: every one is durable and in order', async () => {
    const j = await journalIn();
    const { journal } = await j.open();
    const records = Array.from({ length: 300 }, () => record());
    await Promise.all(records.map((r) => journal.append(add(r))));
    // Finishing some while adding more, all at once.
    const more = Array.from({ length: 100 }, () => record());
    await Promise.all([...records.slice(0, 150).map((r) => journal.append({ op: 'done', id: r.id })), ...more.map((r) => journal.append(add(r)))]);
    await journal.close();

    const lines = await j.lines();
    expect(lines).toHaveLength(550);
    lines.forEach((line) => expect(() => JSON.parse(line)).not.toThrow());
    const reopened = await j.open();
    expect(reopened.live.map((r) => r.id)).toEqual([...records.slice(150), ...more].map((r) => r.id));
    await reopened.journal.close();
  });

  it('skips a torn last line and recovers everything before it; later appends are not swallowed', async () => {
    const j = await journalIn();
    const { journal } = await j.open();
    const [a, b] = [record(), record()];
    await journal.append(add(a), add(b));
    await journal.close();
    // A crash in the middle of writing `done a`: half a line, no newline.
    await appendFile(j.file, JSON.stringify({ op: 'done', id: a.id }).slice(0, 15));

    const second = await j.open();
    expect(second.live).toEqual([a, b]);
    const c = record();
    await second.journal.append(add(c));
    await second.journal.close();
    const third = await j.open();
    expect(third.live).toEqual([a, b, c]);
    await third.journal.close();
  });

  it('skips an unreadable line in the middle and keeps the lines around it', async () => {
    const j = await journalIn();
    const [a, b] = [record(), record()];
    await writeFile(j.file, `${JSON.stringify(add(a))}\nnot json at all\n{"op":"add"}\n${JSON.stringify(add(b))}\n`);
    const { journal, live } = await j.open();
    expect(live).toEqual([a, b]);
    await journal.close();
  });

  it('compacts on open to one add line per live task', async () => {
    const j = await journalIn();
    const { journal } = await j.open();
    const records = Array.from({ length: 20 }, () => record());
    await journal.append(...records.map(add));
    await journal.append(...records.filter((_, i) => i % 4 !== 0).map((r) => ({ op: 'done' as const, id: r.id })));
    await journal.close();
    expect(await j.lines()).toHaveLength(35);

    const reopened = await j.open();
    await reopened.journal.close();
    const live = records.filter((_, i) => i % 4 === 0);
    expect((await j.lines()).map((line) => JSON.parse(line) as JournalEntry)).toEqual(live.map(add));
    expect(reopened.live).toEqual(live);
  });

  it('compacts while running once enough finished lines piled up, losing nothing live', async () => {
    const j = await journalIn(undefined, 10);
    const { journal } = await j.open();
    const keep = record();
    await journal.append(add(keep));
    for (let i = 0; i < 30; i += 1) {
      const r = record();
      await journal.append(add(r));
      await journal.append({ op: 'done', id: r.id });
    }
    expect((await j.lines()).length).toBeLessThan(61);
    await journal.close();
    const reopened = await j.open();
    expect(reopened.live).toEqual([keep]);
    await reopened.journal.close();
  });
  // The spool's directory flush and the journal's write run side by side. When the
  // flush fails at once (the spool directory gone) while a long write is still going,
  // the file is cut back only once that write has stopped: cut before, the rest of the
  // write lands after the cut, and a later cut back to the journal's idea of its length
  // takes a tail of good lines with it (acknowledged tasks lost at the next start).
  it('a failed batch leaves no bytes behind, even when its write was still going as the flush failed, and later batches stay whole', async () => {
    const dir = await tempDir();
    const spoolDir = path.join(dir, 'spool');
    const file = path.join(dir, 'journal.log');
    const journal = createJournal({ file, syncDirs: [spoolDir], logger });
    await journal.open();
    // A record of ~24 MiB takes tens of milliseconds to write; opening a missing directory fails at once.
    const big = (): TaskRecord => ({ ...record(), dest: `/srv/${'x'.repeat(24 * 2 ** 20)}` });
    const settledSize = async () => {
      for (let last = -1; ; ) {
        await new Promise((resolve) => setTimeout(resolve, 150));
        const { size } = await stat(file);
        if (size === last) return size;
        last = size;
      }
    };

    await expect(journal.append(add(big()))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await settledSize()).toBe(0);

    await mkdir(spoolDir);
    const kept = record();
    await journal.append(add(kept)); // acknowledged
    const keptBytes = (await stat(file)).size;
    await rm(spoolDir, { recursive: true });
    await expect(journal.append(add(big()))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await settledSize()).toBe(keptBytes);
    await journal.close();

    const reopened = createJournal({ file, syncDirs: [dir], logger });
    expect(await reopened.open()).toEqual([kept]);
    await reopened.close();
  });
});

describe('spool', () => {
  it('sweep removes files no live task refers to and keeps the referenced ones', async () => {
    const spool = createSpool(path.join(await tempDir(), 'spool'));
    await spool.init();
    const [kept, orphan] = [spool.newFile(), spool.newFile()];
    expect(kept.name).not.toBe(orphan.name);
    await writeFile(kept.path, 'live data');
    await writeFile(orphan.path, 'partial upl');
    await writeFile(path.join(spool.dir, 'stray.tmp'), '');
    await mkdir(path.join(spool.dir, 'junk-dir/inner'), { recursive: true });
    expect(await spool.sweep(new Set([kept.name, 'referenced-but-gone.staged']))).toBe(3);
    expect(await readdir(spool.dir)).toEqual([kept.name]);
    expect(await readFile(kept.path, 'utf8')).toBe('live data');
  });

  it('init makes the spool dir 0700 even when it existed with looser permissions', async () => {
    const dir = path.join(await tempDir(), 'spool');
    await mkdir(dir, { mode: 0o755 });
    await chmod(dir, 0o755);
    await createSpool(dir).init();
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
  });

  it('receive stages a file with mode 0600 and its size and SHA-256', async () => {
    const spool = createSpool(path.join(await tempDir(), 'spool'));
    await spool.init();
    const received = await receive(spool, Readable.from([Buffer.from('hel'), Buffer.from('lo')]), { maxBytes: 100, minFree: 0 });
    expect(received).toMatchObject({ bytes: 5, sha256: '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824' });
    expect((await stat(spool.path(received.staged))).mode & 0o777).toBe(0o600);
  });

  it('the agent makes state_dir and spool 0700 and stages uploads 0600', async () => {
    const dir = await tempDir();
    await mkdir(path.join(dir, 'state/spool'), { recursive: true, mode: 0o755 });
    await chmod(path.join(dir, 'state'), 0o755);
    await chmod(path.join(dir, 'state/spool'), 0o755);
    // Pushes are held, so the upload stays staged while we look at it.
    const held: TestTarget[] = [];
    const createTarget = wrapTargets((real) => {
      const target = createTestTarget({ name: real.name, held: true, delegate: real });
      held.push(target);
      return target;
    });
    const t = await startAgent({ dir, createTarget });
    const res = await fetch(`${t.url}/drop/files/x.txt`, { method: 'PUT', body: 'secret' });
    expect(res.status).toBe(202);
    expect((await stat(t.stateDir)).mode & 0o777).toBe(0o700);
    expect((await stat(path.join(t.stateDir, 'spool'))).mode & 0o777).toBe(0o700);
    expect((await stat(path.join(t.stateDir, 'journal.log'))).mode & 0o777).toBe(0o600);
    const [staged, ...others] = await readdir(path.join(t.stateDir, 'spool'));
    expect(others).toEqual([]);
    expect((await stat(path.join(t.stateDir, 'spool', String(staged)))).mode & 0o777).toBe(0o600);
    held.forEach((target) => target.release());
  });
});
