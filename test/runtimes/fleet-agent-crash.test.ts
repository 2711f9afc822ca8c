// A fleet through a real `stevedore run` process on Docker and Incus (issue 13, item 5):
// SIGKILLed in the middle of a fan-out and started again, nothing accepted is lost and a
// member whose delivery was confirmed (its `task done` logged) is not pushed that file
// again; SIGHUP with a changed selector: the members that stop matching get nothing
// more, the one that starts matching catches up. Then one agent feeding fleets on remote
// hosts through the runtimes' own protocols (item 4): Incus through the remote
// stevedore-remote (incusd's HTTPS API on loopback), Docker through dockerd's second
// socket. The agent runs from the sources through tsx: what is tested is its journal
// and its members, and starting it takes 3 s where building the CLI takes 30.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { startAgent } from '../helpers/agent.js';
import { root } from '../helpers/cli.js';
import { freePort, json, send } from '../helpers/http.js';
import { tempDir } from '../helpers/temp.js';
import { waitFor } from '../helpers/wait.js';
import { countCalls } from './pushing.js';
import { DOCKER_SECOND_HOST, INCUS_REMOTE, runtimesToTest, type RuntimeUnderTest } from './runtimes.js';

const list = await runtimesToTest();
const UPLOADS = 40;
const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const unique = () => `sd-fk-${randomBytes(3).toString('hex')}`;
const figures: string[] = [];

afterAll(() => {
  if (figures.length > 0) process.stdout.write(`fleet agent killed mid-fan-out:\n${figures.join('\n')}\n`);
});

interface Run {
  child: ChildProcessWithoutNullStreams;
  /** Its log lines, parsed. */
  logs: Record<string, unknown>[];
}

/** `stevedore run -c file` as its own process, its JSON log lines collected. */
function run(file: string): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli.ts'), 'run', '-c', file], { cwd: root, stdio: 'pipe' });
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const logs: Record<string, unknown>[] = [];
  let rest = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) if (line.startsWith('{')) logs.push(JSON.parse(line) as Record<string, unknown>);
  });
  child.stderr.resume();
  return { child, logs };
}

const exited = (child: ChildProcessWithoutNullStreams) => new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(undefined) : child.once('close', resolve)));

// A delivery, as its log lines name it: the destination and the member (a retained
// version pushed to a member catching up has a task id of its own, the same dest).
const pairs = (logs: Record<string, unknown>[], msg: string) => logs.filter((l) => l.msg === msg && l.container !== undefined).map((l) => `${String(l.dest)} ${String(l.container)}`);

/** name → sha256 of every regular file in /srv/web of a container. */
async function filesIn(runtime: RuntimeUnderTest, container: string): Promise<Map<string, string>> {
  const out = await runtime.sh(container, 'cd /srv/web 2>/dev/null && for f in *; do [ -f "$f" ] && echo "$(sha256sum "$f" | cut -c1-64) $f"; done; true');
  return new Map(out.split('\n').filter(Boolean).map((line) => line.split(' ').reverse() as [string, string]));
}

describe.each(list.filter((r) => r.name === 'docker' || r.name === 'incus'))('$name', (runtime: RuntimeUnderTest) => {
  it('SIGKILL mid-fan-out: nothing accepted is lost, confirmed members get no second push; SIGHUP with another selector: the old members get nothing more, the new one catches up', async () => {
    if (runtime.missing) throw new Error(`${runtime.name} is required under CI=true but cannot be used: ${runtime.missing}`);
    const p = unique();
    const a = [1, 2, 3].map((n) => `${p}-a${n}`);
    const b = `${p}-b1`;
    const made: string[] = [];
    onTestFinished(async () => {
      for (const name of made) await runtime.remove(name);
    });
    for (const name of a) {
      await runtime.createLabeled(name, { fleet: p, tier: 'a' });
      made.push(name);
    }
    await runtime.createLabeled(b, { fleet: p, tier: 'b' });
    made.push(b);

    const dir = await tempDir();
    const port = await freePort();
    const file = path.join(dir, 'stevedore.yaml');
    const config = (tier: string) => `version: 1
state_dir: ${path.join(dir, 'state')}
log: { level: info, format: json }
targets: { web: { runtime: ${runtime.name}, select: { labels: { fleet: ${p}, tier: ${tier} } } } }
defaults: { retry: { attempts: 50, initial_delay: 50ms, max_delay: 500ms } }
queue: { shutdown_grace: 1s }
http: { listen: 127.0.0.1:${port}, min_free: 1MiB, routes: [{ name: web, path: /drop/web, target: web, dest: /srv/web, retain: true }] }
`;
    await writeFile(file, config('a'));
    const url = `http://127.0.0.1:${port}`;
    const healthy = async () => (await send(url, '/healthz', { method: 'GET' }).catch(() => undefined))?.status === 200;

    const first = run(file);
    await waitFor(healthy, { timeoutMs: 30_000, intervalMs: 50, what: 'the agent to listen' });
    const sent = new Map<string, string>();
    const accepted = new Set<string>();
    const uploads = Promise.all(Array.from({ length: UPLOADS }, async (_, i) => {
      const name = `f${i}.bin`;
      const data = randomBytes(4096 + i);
      sent.set(name, sha(data));
      const answer = await send(url, `/drop/web/${name}`, { body: data }).catch(() => undefined);
      if (answer?.status === 202) accepted.add(name);
    }));
    // Killed once some member confirmed a delivery: the fan-out is under way.
    await waitFor(() => pairs(first.logs, 'task done').length >= 15, { timeoutMs: 30_000, what: 'some deliveries to be done' });
    first.child.kill('SIGKILL');
    await exited(first.child);
    await uploads;
    const confirmed = new Set(pairs(first.logs, 'task done'));
    const pushedBefore = pairs(first.logs, 'task pushing').length;

    const second = run(file);
    onTestFinished(async () => {
      second.child.kill('SIGTERM');
      await exited(second.child);
    });
    await waitFor(healthy, { timeoutMs: 30_000, intervalMs: 50, what: 'the agent to listen again' });
    const landed = async () => {
      for (const name of a) {
        const there = await filesIn(runtime, name);
        if ([...accepted].some((f) => there.get(f) !== sent.get(f))) return false;
      }
      return (await readdir(path.join(dir, 'state/spool'))).length === 0;
    };
    await waitFor(landed, { timeoutMs: 60_000, intervalMs: 250, what: 'every accepted upload in every member, and the spool empty' });
    const again = pairs(second.logs, 'task pushing');
    figures.push(`  ${runtime.name}: ${accepted.size} of ${UPLOADS} uploads accepted; before the kill ${pushedBefore} deliveries pushed, ${confirmed.size} confirmed; after the restart ${new Set(again).size} pushed (${again.length} pushes), none of them confirmed before`);
    expect(again.filter((pair) => confirmed.has(pair))).toEqual([]);
    expect(accepted.size).toBeGreaterThan(0);
    expect((await filesIn(runtime, b)).size).toBe(0); // not selected: nothing went there

    // SIGHUP: the selector now takes tier b.
    await writeFile(file, config('b'));
    const reloadedAt = second.logs.length;
    second.child.kill('SIGHUP');
    await waitFor(() => second.logs.slice(reloadedAt).some((l) => l.msg === 'config reloaded'), { timeoutMs: 15_000, what: 'the reload' });
    // b1 catches up: the newest retained version of every destination.
    await waitFor(async () => {
      const there = await filesIn(runtime, b);
      return [...accepted].every((f) => there.get(f) === sent.get(f));
    }, { timeoutMs: 30_000, intervalMs: 250, what: `${b} to catch up` });
    const after = await send(url, '/drop/web/after-hup.txt', { body: 'after the reload' });
    expect(after.status).toBe(202);
    const id = json<{ id: string }>(after).id;
    const done = await waitFor(async () => {
      const task = json<{ status: string; deliveries?: { container: string; status: string }[] }>(await send(url, `/tasks/${id}`, { method: 'GET' }));
      return task.status === 'done' ? task : undefined;
    }, { timeoutMs: 30_000, intervalMs: 50, what: 'the upload after the reload' });
    expect(done.deliveries?.map((d) => [d.container, d.status])).toEqual([[b, 'done']]);
    expect((await filesIn(runtime, b)).get('after-hup.txt')).toBe(sha('after the reload'));
    for (const name of a) expect((await filesIn(runtime, name)).has('after-hup.txt')).toBe(false);
    expect(second.logs.slice(reloadedAt).filter((l) => l.msg === 'task pushing' && a.includes(String(l.container)))).toEqual([]);
  }, 180_000);
});

// Both remote hosts, one agent; each runtime's CLI is wrapped to refuse any call that
// does not go through the remote or the second socket (as fleet-remotes.test.ts does).
const incus = list.find((r) => r.name === 'incus');
const docker = list.find((r) => r.name === 'docker');

describe.runIf(incus !== undefined && docker !== undefined)('remote hosts', () => {
  it('one agent gets files into the members of an Incus remote\'s fleet and of a Docker second socket\'s fleet, a replica made later too', async () => {
    const runtimes = [incus, docker] as RuntimeUnderTest[];
    for (const r of runtimes) if (r.missing) throw new Error(`${r.name} is required under CI=true but cannot be used: ${r.missing}`);
    const p = unique();
    // The real CLIs, for the test's own calls once the wrappers are first on PATH.
    const real = Object.fromEntries(await Promise.all(runtimes.map(async (r) => [r.name, (await execa('sh', ['-c', `command -v ${r.command}`])).stdout] as const)));
    const made: [RuntimeUnderTest, string][] = [];
    onTestFinished(async () => {
      for (const [r, name] of made) await execa(real[r.name] as string, r.name === 'incus' ? ['delete', '-f', name] : ['rm', '-f', name]);
    });
    const make = async (r: RuntimeUnderTest, name: string) => {
      await r.createLabeled(name, { fleet: p });
      made.push([r, name]);
    };
    for (const r of runtimes) for (const n of [1, 2]) await make(r, `${p}-${r.name}-${n}`);
    const refused = path.join(await tempDir(), 'refused');
    const refuse = (through: string) => ({ before: `${through} || { echo "$*" >> '${refused}'; exit 1; }` });
    await countCalls('incus', refuse(`case "$*" in *${INCUS_REMOTE}:*) true ;; *) false ;; esac`));
    await countCalls('docker', refuse(`[ "$1" = -H ] && [ "$2" = ${DOCKER_SECOND_HOST} ]`));
    const cat = async (r: RuntimeUnderTest, name: string, file: string) =>
      (await execa(real[r.name] as string, r.name === 'incus' ? ['exec', name, '--', 'cat', file] : ['exec', name, 'cat', file], { reject: false })).stdout;

    const t = await startAgent({
      targets: `  ri: { runtime: incus, remote: ${INCUS_REMOTE}, select: { labels: { fleet: ${p} } } }
  rd: { runtime: docker, host: "${DOCKER_SECOND_HOST}", select: { labels: { fleet: ${p} } } }`,
      http: `    - { name: ri, path: /drop/ri, target: ri, dest: /srv/r, retain: true }
    - { name: rd, path: /drop/rd, target: rd, dest: /srv/r, retain: true }`,
    });
    for (const r of runtimes) {
      const route = r.name === 'incus' ? 'ri' : 'rd';
      const answer = await send(t.url, `/drop/${route}/hello.txt`, { body: `hello ${r.name}`, headers: { Prefer: 'wait=30' } });
      const task = json<{ status: string; deliveries?: { container: string; status: string }[] }>(answer);
      expect(task.status, answer.text).toBe('done');
      expect(task.deliveries?.map((d) => [d.container, d.status]).sort()).toEqual([1, 2].map((n) => [`${p}-${r.name}-${n}`, 'done']));
      for (const n of [1, 2]) expect(await cat(r, `${p}-${r.name}-${n}`, '/srv/r/hello.txt')).toBe(`hello ${r.name}`);
    }
    // A third replica on each host, made with the real CLI: told by the remote's events, caught up.
    for (const r of runtimes) {
      const name = `${p}-${r.name}-3`;
      const labels = r.name === 'incus' ? ['launch', '-q', 'local/busybox', name, '-c', `user.fleet=${p}`] : ['run', '-d', '--name', name, '--label', `fleet=${p}`, '--network', 'none', 'local/busybox', 'sleep', '1d'];
      await execa(real[r.name] as string, labels, { stdin: 'ignore' });
      made.push([r, name]);
      await waitFor(async () => (await cat(r, name, '/srv/r/hello.txt')) === `hello ${r.name}`, { timeoutMs: 20_000, intervalMs: 100, what: `${name} to catch up` });
    }
    expect(await readFile(refused, 'utf8').catch(() => '')).toBe('');
  }, 120_000);
});
