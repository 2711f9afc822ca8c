// Fleets on the real runtimes (issue 13): which containers a selector takes, the change
// each runtime event makes in the membership, and the membership still followed after
// the event stream was cut (the daemon stopped and started; Podman has none: its
// `podman events` process is killed). Daemon tests stop the real daemon: this project
// runs these files one at a time (vitest.config.ts). Prints the start → change latencies.
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { summarize } from '../../src/commands/validate.js';
import { loadConfig } from '../../src/config/load.js';
import { createDiscovery } from '../../src/targets/fleet/discovery.js';
import { tempDir } from '../helpers/temp.js';
import { waitFor } from '../helpers/wait.js';
import { byName, followFleet, joined, left, spread, started, stopped } from './fleet.js';
import { runtimesToTest, type RuntimeUnderTest } from './runtimes.js';

const list = await runtimesToTest();
const latencies: string[] = [];
// Start → change, measured this many times per runtime.
const STARTS = 5;

afterAll(() => {
  if (latencies.length > 0) process.stdout.write(`fleet membership: container start → onChange (ms)\n${latencies.join('\n')}\n`);
});

describe.each(list)('$name', (runtime: RuntimeUnderTest) => {
  const made = new Set<string>();
  const unique = () => `sd-disc-${randomBytes(3).toString('hex')}`;
  const make = async (name: string, labels: Record<string, string>, running = true) => {
    await runtime.createLabeled(name, labels, running);
    made.add(name);
  };
  const remove = async (name: string) => {
    await runtime.remove(name);
    made.delete(name);
  };

  beforeAll(() => {
    if (runtime.missing) throw new Error(`${runtime.name} is required under CI=true but cannot be used: ${runtime.missing}`);
  });
  afterAll(async () => {
    for (const name of made) await runtime.remove(name);
  }, 60_000);

  it('labels and the name glob take the right containers, running or not, and none of those made beside them; validate says so', async () => {
    const p = unique();
    const web = { fleet: p, tier: 'web' };
    await make(`${p}-web-1`, web);
    await make(`${p}-web-2`, web, false);
    await make(`${p}-web-3`, { fleet: p, tier: 'api' }); // a label's value differs
    await make(`${p}-api-1`, web); // the name does not match
    await make(`${p}-web-4`, { fleet: p }); // a label is missing
    const fleet = { runtime: runtime.name, select: { labels: web, name: `${p}-web-*` } };
    const listed = byName(await createDiscovery(fleet).list(AbortSignal.timeout(20_000)));
    expect(listed.map(({ name, running }) => [name, running])).toEqual([[`${p}-web-1`, true], [`${p}-web-2`, false]]);
    expect(new Set(listed.map((m) => m.id)).size).toBe(2);
    const { membership } = await followFleet(fleet);
    expect(byName(membership.members())).toEqual(listed);

    const file = path.join(await tempDir(), 'fleet.yaml');
    await writeFile(file, `version: 1\ntargets:\n  f: { runtime: ${runtime.name}, select: { labels: { fleet: ${p}, tier: web }, name: "${p}-web-*" } }\n`);
    expect((await summarize(await loadConfig(file))).split('\n').slice(1, 3)).toEqual([
      `target f: ${runtime.name} fleet [fleet=${p}, tier=web, name ${p}-web-*]`,
      `  matches now: ${p}-web-1 (running), ${p}-web-2 (not running)`,
    ]);
  });

  it('start, stop, remove, re-create under the same name and relabel each make their change promptly', async () => {
    const p = unique();
    const name = `${p}-a`;
    const f = await followFleet({ runtime: runtime.name, select: { labels: { fleet: p } } });
    await make(name, { fleet: p });
    const first = (await f.next(joined(name), 'the new container to join')).change.joined[0];
    await waitFor(() => f.membership.members().find((m) => m.name === name)?.running, { timeoutMs: 15_000, what: 'it to run' });

    const fromReturn: number[] = [];
    const fromCall: number[] = [];
    for (let i = 0; i < STARTS; i += 1) {
      await runtime.stop(name);
      await f.next(stopped(name), 'the stop');
      const called = performance.now();
      await runtime.start(name);
      const returned = performance.now();
      const { at } = await f.next(started(name), 'the start');
      fromReturn.push(at - returned);
      fromCall.push(at - called);
    }
    const [a, b] = [spread(fromReturn), spread(fromCall)];
    latencies.push(`  ${runtime.name}: from the start command's return p50 ${a.p50} max ${a.max}; from its call p50 ${b.p50} max ${b.max} (${STARTS} starts)`);

    await remove(name);
    await f.next(left(name), 'the removal');
    await make(name, { fleet: p });
    const again = (await f.next(joined(name), 'the re-created container to join')).change.joined[0];
    expect(again?.id).not.toBe(first?.id); // a new container: a new id (Incus/LXD: volatile.uuid)

    if (runtime.relabel) {
      await runtime.relabel(name, 'fleet', 'other');
      await f.next(left(name), 'the relabeled container to leave');
      await runtime.relabel(name, 'fleet', p);
      const back = (await f.next(joined(name), 'the relabeled container to join again')).change.joined[0];
      expect(back?.id).toBe(again?.id);
    }
  });

  it('the event stream cut (the daemon stopped and started; podman: its events process killed): the outage is logged once and membership is followed afterwards', async () => {
    const p = unique();
    const f = await followFleet({ runtime: runtime.name, select: { labels: { fleet: p } } });
    await make(`${p}-a`, { fleet: p });
    await f.next(joined(`${p}-a`), 'the first container to join');
    await cutStream(runtime, () => f.membership.following);
    await waitFor(() => f.membership.following, { timeoutMs: 60_000, what: 'following again' });
    await waitFor(() => f.logs.some((line) => line.msg === 'fleet: following its members again'), { what: 'the log to say so' });
    // The stream ending, or a look failing while the daemon shuts down: whichever came first.
    const warnings = f.logs.filter((line) => line.level === 40);
    expect(warnings).toEqual([expect.objectContaining({ msg: expect.stringMatching(/event stream ended|could not list its containers/), error: expect.objectContaining({ code: runtime.daemon ? 'TARGET_DOWN' : 'TARGET_IO' }) })]);

    await make(`${p}-b`, { fleet: p });
    await f.next(joined(`${p}-b`), 'a container made after the cut to join');
    const now = byName(await createDiscovery({ runtime: runtime.name, select: { labels: { fleet: p } } }).list(AbortSignal.timeout(20_000)));
    await waitFor(() => JSON.stringify(byName(f.membership.members())) === JSON.stringify(now), { what: 'the members to be what the runtime lists' });
  }, 150_000);
});

// Cuts the runtime's event stream and waits until the membership says it is not following.
async function cutStream(runtime: RuntimeUnderTest, following: () => boolean): Promise<void> {
  if (runtime.daemon) {
    try {
      await runtime.daemon.stop();
      await waitFor(() => !following(), { timeoutMs: 30_000, what: 'following to stop' });
    } finally {
      await runtime.daemon.start();
    }
    return;
  }
  // Our own `podman events` process: a child of this test's process.
  const { stdout } = await execa('pgrep', ['-P', String(process.pid), '-f', '^podman events']);
  for (const pid of stdout.split('\n')) process.kill(Number(pid), 'SIGKILL');
  await waitFor(() => !following(), { timeoutMs: 10_000, what: 'following to stop' });
}
