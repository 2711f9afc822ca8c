// Host faults, for real: state_dir on a small tmpfs that fills up. Uploads get 507 once
// min_free would be crossed (and when the disk really is full), the agent keeps serving,
// nothing accepted is lost, and once the spool drains new uploads succeed again.
import { execFile } from 'node:child_process';
import { mkdir, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startAgent } from './helpers/agent.js';
import { json, open, send } from './helpers/http.js';
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
