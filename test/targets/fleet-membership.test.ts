// Membership against a fake Docker CLI whose daemon can be taken away: `ps` prints the
// containers a test wrote, `events` follows a file a test appends to, and while the daemon
// is "down" both fail as the real CLI does. The real runtimes are in
// test/runtimes/fleet-discovery.test.ts; this proves the reconnecting and its logging.
import { appendFile, chmod, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createMembership } from '../../src/targets/fleet/membership.js';
import type { Member, MembershipChange } from '../../src/targets/fleet/types.js';
import { tempDir } from '../helpers/temp.js';
import { waitFor } from '../helpers/wait.js';
import { captureLogs, setEnv } from '../runtimes/pushing.js';

const DOWN = 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?';
const FAKE = `#!/bin/sh
[ "$1" = -H ] && shift 2
echo "$*" >> "$FAKE_DIR/calls"
if [ -e "$FAKE_DIR/down" ]; then echo '${DOWN}' >&2; exit 1; fi
case "$1" in
  ps) cat "$FAKE_DIR/ps" ;;
  events) echo $$ > "$FAKE_DIR/events.pid"; exec tail -n 0 -f "$FAKE_DIR/events" ;;
  *) exit 2 ;;
esac
`;

interface Fake {
  dir: string;
  /** Sets what `ps` answers. */
  containers(members: Member[]): Promise<void>;
  /** Appends one event line to the stream. */
  event(): Promise<void>;
  /** Takes the daemon away (the stream ends) or brings it back. */
  down(): Promise<void>;
  up(): Promise<void>;
  streamPid(): Promise<number>;
}

async function fakeDocker(): Promise<Fake> {
  const dir = await tempDir();
  await writeFile(path.join(dir, 'docker'), FAKE);
  await chmod(path.join(dir, 'docker'), 0o755);
  await writeFile(path.join(dir, 'events'), '');
  await writeFile(path.join(dir, 'ps'), '');
  setEnv({ PATH: `${dir}:${process.env.PATH ?? ''}`, FAKE_DIR: dir });
  const streamPid = async () => Number((await readFile(path.join(dir, 'events.pid'), 'utf8')).trim());
  return {
    dir,
    // Written aside and renamed in: a `ps` reading the file as it was rewritten in place
    // saw it empty, every member gone (once beside two CPU hogs).
    async containers(members) {
      await writeFile(path.join(dir, 'ps.new'), members.map((m) => `${JSON.stringify({ ID: m.id, Names: m.name, State: m.running ? 'running' : 'exited' })}\n`).join(''));
      await rename(path.join(dir, 'ps.new'), path.join(dir, 'ps'));
    },
    event: () => appendFile(path.join(dir, 'events'), '{"Action":"start"}\n'),
    async down() {
      await writeFile(path.join(dir, 'down'), '');
      process.kill(await streamPid());
    },
    up: () => rm(path.join(dir, 'down')),
    streamPid,
  };
}

const web = (n: number, running = true): Member => ({ name: `web-${n}`, id: `id-${n}`, running });

async function started(options: { resyncMs?: number } = {}) {
  const { lines, logger } = captureLogs();
  const membership = createMembership({ runtime: 'docker', select: { labels: { app: 'web' }, name: 'web-*' } }, { logger, readyMs: 100, backoff: { initialMs: 20, maxMs: 80 }, ...options });
  onTestFinished(() => membership.close());
  const changes: MembershipChange[] = [];
  membership.onChange((change) => changes.push(change));
  await membership.start();
  await waitFor(() => membership.following, { what: 'the stream to connect' });
  await membership.resync(); // past the look that connecting makes
  return { membership, changes, lines };
}

describe('membership (a fake docker CLI)', () => {
  it('lists once at start, then looks again on an event: the name glob applies here, the labels go to the daemon', async () => {
    const fake = await fakeDocker();
    await fake.containers([web(1), { name: 'api-1', id: 'x', running: true }]);
    const { membership, changes } = await started();
    expect(membership.members()).toEqual([web(1)]);
    expect(changes).toEqual([{ joined: [web(1)], left: [], started: [], stopped: [] }]);
    const calls = await readFile(path.join(fake.dir, 'calls'), 'utf8');
    expect(calls).toContain('ps -a --no-trunc --filter label=app=web --format {{json .}}');
    expect(calls).toContain('events --format {{json .}} --filter type=container --filter label=app=web --filter event=create --filter event=start');
    await fake.containers([web(1, false), web(2)]);
    await fake.event();
    await waitFor(() => changes.length === 2, { what: 'the change' });
    expect(changes[1]).toEqual({ joined: [web(2)], left: [], started: [], stopped: [web(1, false)] });
    expect(membership.members()).toEqual([web(1, false), web(2)]);
  });

  it('a burst of events is one look', async () => {
    const fake = await fakeDocker();
    const { changes } = await started();
    const before = (await readFile(path.join(fake.dir, 'calls'), 'utf8')).split('\n').filter((l) => l.startsWith('ps')).length;
    await fake.containers([web(1)]);
    await appendFile(path.join(fake.dir, 'events'), '{"Action":"create"}\n{"Action":"start"}\n{"Action":"start"}\n');
    await waitFor(() => changes.length === 1, { what: 'the change' });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const after = (await readFile(path.join(fake.dir, 'calls'), 'utf8')).split('\n').filter((l) => l.startsWith('ps')).length;
    expect(after - before).toBe(1);
  });

  it('an event whose look sees nothing new is looked at again a little later (Docker lists a container as running for a moment after its die)', async () => {
    const fake = await fakeDocker();
    await fake.containers([web(1)]);
    const { changes } = await started();
    const looks = async () => (await readFile(path.join(fake.dir, 'calls'), 'utf8')).split('\n').filter((l) => l.startsWith('ps')).length;
    const before = await looks();
    await fake.event(); // the container died, but ps does not say so yet
    await waitFor(async () => (await looks()) > before, { what: 'the look the event makes' });
    await fake.containers([web(1, false)]);
    await waitFor(() => changes.length === 2, { timeoutMs: 3000, what: 'the look again' });
    expect(changes[1]).toEqual({ joined: [], left: [], started: [], stopped: [web(1, false)] });
  });

  it('the stream cut: following is false, the outage is logged once however many retries, and once back what changed meanwhile is seen', async () => {
    const fake = await fakeDocker();
    await fake.containers([web(1)]);
    const { membership, changes, lines } = await started();
    await fake.down();
    await waitFor(() => !membership.following, { what: 'following to be false' });
    await fake.containers([web(1), web(2)]); // changed while the daemon was away: no event will say so
    const retried = () => readFile(path.join(fake.dir, 'calls'), 'utf8').then((calls) => calls.split('\n').filter((l) => l.startsWith('events')).length);
    await waitFor(async () => (await retried()) >= 5, { what: 'several reconnect attempts' });
    expect(membership.following).toBe(false);
    const warnings = lines.filter((line) => line.level === 40);
    // Said when it ends: here its process was killed (a real CLI says the daemon went away).
    expect(warnings).toEqual([expect.objectContaining({ msg: expect.stringContaining('event stream ended'), error: { code: 'TARGET_IO', message: expect.stringContaining('killed with SIGTERM') } })]);
    await fake.up();
    await waitFor(() => membership.following, { timeoutMs: 5000, what: 'following again' });
    await waitFor(() => changes.length === 2, { what: 'the change made during the outage' });
    expect(changes[1]).toEqual({ joined: [web(2)], left: [], started: [], stopped: [] });
    expect(lines.filter((line) => line.level === 40)).toHaveLength(1);
    expect(lines).toContainEqual(expect.objectContaining({ level: 30, msg: expect.stringContaining('following its members again') }));
  });

  it('resync() looks now (no event needed), and the periodic one does too', async () => {
    const fake = await fakeDocker();
    const { membership, changes } = await started({ resyncMs: 300 });
    await fake.containers([web(3)]);
    await membership.resync();
    expect(changes).toEqual([{ joined: [web(3)], left: [], started: [], stopped: [] }]);
    await fake.containers([]);
    await waitFor(() => changes.length === 2, { what: 'the periodic look' });
    expect(changes[1]).toEqual({ joined: [], left: ['web-3'], started: [], stopped: [] });
  });

  it('a listener that throws is logged, and the others are still told', async () => {
    const fake = await fakeDocker();
    const { membership, changes, lines } = await started();
    membership.onChange(() => {
      throw new Error('listener bug');
    });
    const second: MembershipChange[] = [];
    membership.onChange((change) => second.push(change));
    await fake.containers([web(1)]);
    await membership.resync();
    expect(changes).toHaveLength(1);
    expect(second).toHaveLength(1);
    expect(lines).toContainEqual(expect.objectContaining({ level: 50, msg: 'fleet: a membership listener failed', err: expect.objectContaining({ message: 'listener bug' }) }));
  });

  it('close() ends the stream\'s process and looks no more', async () => {
    const fake = await fakeDocker();
    const { membership } = await started();
    const pid = await fake.streamPid();
    await membership.close();
    expect(() => process.kill(pid, 0)).toThrow(/ESRCH/);
    expect(membership.following).toBe(false);
  });
});
