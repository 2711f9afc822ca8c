// What a watched folder holds that the agent may not read (its writer's chmod 000, or
// another user's private directory): skipped and said once, never taken for gone, and
// picked up once it may be read. The agent runs as nobody, as a process, since root
// reads everything.
import { execFile } from 'node:child_process';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { finished, useBuiltCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/temp.js';
import { waitFor } from '../helpers/wait.js';
import { runAgent, type RunningAgent } from './race.js';

const run = promisify(execFile);
const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
const DENIED = 'skipping what the agent may not read (permission denied) until it may';

const readOrUndefined = (file: string) => readFile(file, 'utf8').catch(() => undefined);

async function waitLanded(agent: RunningAgent, rel: string, content: string): Promise<void> {
  const file = path.join(agent.box, 'srv/in', rel);
  await waitFor(async () => (await readOrUndefined(file)) === content, { timeoutMs: 15_000, what: `${rel} to land` });
}

// Every task the agent queued has ended, seen twice in a row.
async function waitIdle(agent: RunningAgent): Promise<void> {
  const idle = () => {
    const open = new Set<unknown>();
    for (const line of agent.logs) {
      if (line.msg === 'task queued') open.add(line.taskId);
      if (line.msg === 'task done' || line.msg === 'task failed') open.delete(line.taskId);
    }
    return open.size === 0;
  };
  let streak = 0;
  await waitFor(() => (idle() ? ++streak >= 2 : (streak = 0) > 0), { timeoutMs: 15_000, intervalMs: 100, what: 'the agent to be idle' });
}

// A test directory nobody may use: the folder, the state_dir, the container stand-in.
async function nobodysDir(): Promise<string> {
  const dir = await tempDir();
  await mkdir(path.join(dir, 'in'));
  await chmod(dir, 0o755);
  await run('chown', ['-R', '65534:65534', dir]);
  return dir;
}

describe.runIf(process.getuid?.() === 0)('what the agent may not read in a watched folder', () => {
  useBuiltCli();

  it('mirror, delete: true: a directory it may not read at a restart is said once and kept in the container; readable again, it is watched', async () => {
    const dir = await nobodysDir();
    const folder = path.join(dir, 'in');
    const watch = [{ name: 'in', path: folder, dest: '/srv/in', mode: 'mirror', delete: true, settle: '50ms' }];
    await run('setpriv', [...NOBODY.slice(1), 'sh', '-c', `mkdir ${folder}/locked && echo a > ${folder}/locked/a.txt && echo b > ${folder}/b.txt`]);
    const first = await runAgent(dir, watch, NOBODY);
    await waitLanded(first, 'locked/a.txt', 'a\n');
    await waitLanded(first, 'b.txt', 'b\n');
    first.child.kill('SIGTERM');
    expect((await finished(first.child)).code).toBe(0);

    await chmod(path.join(folder, 'locked'), 0o000);
    const agent = await runAgent(dir, watch, NOBODY);
    // Said by the start-up scan, before the agent is ready; a delete would be queued then too.
    await run('setpriv', [...NOBODY.slice(1), 'sh', '-c', `echo z > ${folder}/zz.txt`]);
    await waitLanded(agent, 'zz.txt', 'z\n');
    await waitIdle(agent);
    expect(await readOrUndefined(path.join(agent.box, 'srv/in/locked/a.txt'))).toBe('a\n');
    expect(agent.logs.filter((l) => l.msg === 'task queued' && l.dest === '/srv/in/locked/a.txt')).toEqual([]);
    expect(agent.logs.filter((l) => l.msg === DENIED).map((l) => [l.level, l.path])).toEqual([[40, path.join(folder, 'locked')]]);

    await chmod(path.join(folder, 'locked'), 0o755);
    await run('setpriv', [...NOBODY.slice(1), 'sh', '-c', `echo new > ${folder}/locked/new.txt`]);
    await waitLanded(agent, 'locked/new.txt', 'new\n');
    agent.child.kill('SIGTERM');
    expect((await finished(agent.child)).code).toBe(0);
  }, 60_000);

  it('drop: a file it may not read is said once (not an error at every retry), stays, and lands once a chmod lets the agent in', async () => {
    const dir = await nobodysDir();
    const folder = path.join(dir, 'in');
    await run('setpriv', [...NOBODY.slice(1), 'sh', '-c', `echo k > ${folder}/key.txt && chmod 000 ${folder}/key.txt`]);
    const agent = await runAgent(dir, [{ name: 'in', path: folder, dest: '/srv/in', settle: '50ms' }], NOBODY);
    // The first look, and at least one retry after its backoff.
    await waitFor(() => agent.logs.filter((l) => l.msg === DENIED).length >= 2, { timeoutMs: 15_000, what: 'a retry of the file' });
    expect(agent.logs.filter((l) => l.msg === DENIED && l.level === 40).map((l) => l.path)).toEqual([path.join(folder, 'key.txt')]);
    expect(agent.logs.filter((l) => Number(l.level) >= 50)).toEqual([]);
    expect(await readOrUndefined(path.join(agent.box, 'srv/in/key.txt'))).toBeUndefined();

    await chmod(path.join(folder, 'key.txt'), 0o644);
    await waitLanded(agent, 'key.txt', 'k\n');
    await waitFor(async () => (await readOrUndefined(path.join(folder, 'key.txt'))) === undefined, { timeoutMs: 15_000, what: 'the pushed file to go' });
    agent.child.kill('SIGTERM');
    expect((await finished(agent.child)).code).toBe(0);
  }, 60_000);
});
