// Fleets on remote hosts through the runtimes' own protocols (issue 13): Incus as the
// remote stevedore-remote (incusd's HTTPS API on loopback, root's client certificate
// trusted) and Docker through dockerd's second socket (test/runtimes/setup.sh makes both).
// A wrapper first on PATH refuses every call of the runtime's CLI that does not go
// through the remote or the socket, so discovery, events and pushes are proved to use it;
// the test drives the containers with the real CLI directly. A remote or daemon that is
// not there is TARGET_DOWN, for a push and for discovery.
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import type { TargetConfig } from '../../src/config/schema.js';
import { createDiscovery, type Fleet } from '../../src/targets/fleet/discovery.js';
import { createMembership } from '../../src/targets/fleet/membership.js';
import { createTarget } from '../../src/targets/index.js';
import { tempDir } from '../helpers/temp.js';
import { waitFor } from '../helpers/wait.js';
import { followFleet, started, stopped } from './fleet.js';
import { captureLogs, codes, countCalls, push, put, setEnv } from './pushing.js';
import { DOCKER_SECOND_HOST, INCUS_REMOTE, runtimesToTest, type RuntimeUnderTest } from './runtimes.js';

const list = await runtimesToTest();
const unique = () => `sd-disc-${randomBytes(3).toString('hex')}`;

interface Way {
  runtime: RuntimeUnderTest | undefined;
  /** How the fleet and the target reach the daemon. */
  via: Pick<Fleet, 'host' | 'remote'>;
  /** sh: true when the CLI call "$@" goes through it. */
  through: string;
  /** The same, somewhere that does not answer; `clean` undoes what `make` set up. */
  unreachable(): Promise<{ via: Pick<Fleet, 'host' | 'remote'>; clean(): Promise<void> }>;
}

const ways: [string, Way][] = [
  ['Incus through the remote stevedore-remote (HTTPS on loopback)', {
    runtime: list.find((r) => r.name === 'incus'),
    via: { remote: INCUS_REMOTE },
    through: `case "$*" in *${INCUS_REMOTE}:*) true ;; *) false ;; esac`,
    async unreachable() {
      // A remote whose server is not listening: added where it answers, then moved to a closed port.
      const remote = unique();
      await execa('incus', ['remote', 'add', remote, 'https://127.0.0.1:18443', '--accept-certificate', '--auth-type', 'tls'], { stdin: 'ignore' });
      await execa('incus', ['remote', 'set-url', remote, 'https://127.0.0.1:1']);
      return { via: { remote }, clean: async () => void (await execa('incus', ['remote', 'remove', remote])) };
    },
  }],
  ['Docker through its second socket', {
    runtime: list.find((r) => r.name === 'docker'),
    via: { host: DOCKER_SECOND_HOST },
    through: `[ "$1" = -H ] && [ "$2" = ${DOCKER_SECOND_HOST} ]`,
    async unreachable() {
      return { via: { host: `unix://${path.join(await tempDir(), 'no-daemon.sock')}` }, clean: async () => undefined };
    },
  }],
];

describe.each(ways.filter(([, way]) => way.runtime !== undefined))('%s', (_title, way) => {
  const runtime = way.runtime as RuntimeUnderTest;
  const made: string[] = [];
  const config = (container: string, via: Way['via']) => ({ runtime: runtime.name, container, ...via }) as TargetConfig;

  afterAll(async () => {
    for (const name of made) await runtime.remove(name);
  }, 60_000);

  it('discovery, events and a push into a member all go through it', async () => {
    if (runtime.missing) throw new Error(`${runtime.name} is required under CI=true but cannot be used: ${runtime.missing}`);
    const p = unique();
    const name = `${p}-a`;
    await runtime.createLabeled(name, { fleet: p });
    made.push(name);
    const real = (await execa('sh', ['-c', `command -v ${runtime.command}`])).stdout;
    const refused = path.join(await tempDir(), 'refused');
    const calls = await countCalls(runtime.command, { before: `${way.through} || { echo "$*" >> '${refused}'; echo 'not through the remote host' >&2; exit 1; }` });

    const f = await followFleet({ runtime: runtime.name, ...way.via, select: { labels: { fleet: p } } });
    expect(f.membership.members()).toEqual([{ name, id: expect.any(String), running: true }]);
    await execa(real, runtime.name === 'incus' ? ['stop', '-f', name] : ['stop', '-t', '0', name]);
    await f.next(stopped(name), 'the stop, told by the remote host\'s events');
    await execa(real, ['start', name]);
    await f.next(started(name), 'the start, told by the remote host\'s events');

    const item = await put(await tempDir(), '/srv/remote/hello.txt', 'through the remote host\n');
    expect(codes(await push(createTarget('f', config(name, way.via)), [item]))).toEqual(['ok']);
    const landed = await execa(real, runtime.name === 'incus' ? ['exec', name, '--', 'cat', '/srv/remote/hello.txt'] : ['exec', name, 'cat', '/srv/remote/hello.txt']);
    expect(landed.stdout).toBe('through the remote host');
    expect((await readFile(calls, 'utf8')).trim()).not.toBe(''); // the wrapper saw the calls, and refused none
    expect(await readFile(refused, 'utf8').catch(() => '')).toBe('');
  });

  it('one that does not answer is TARGET_DOWN for a push and for discovery, and the membership says it is not following', async () => {
    if (runtime.missing) throw new Error(`${runtime.name} is required under CI=true but cannot be used: ${runtime.missing}`);
    const { via, clean } = await way.unreachable();
    try {
      const item = await put(await tempDir(), '/srv/x', 'x');
      const [result] = await push(createTarget('f', config('anything', via)), [item]);
      expect(result).toMatchObject({ ok: false, error: { code: 'TARGET_DOWN' } });
      const fleet = { runtime: runtime.name, ...via, select: { labels: { fleet: 'none' } } };
      await expect(createDiscovery(fleet).list(AbortSignal.timeout(20_000))).rejects.toMatchObject({ code: 'TARGET_DOWN' });
      const { lines, logger } = captureLogs();
      const membership = createMembership(fleet, { logger });
      try {
        await membership.start();
        await waitFor(() => lines.some((line) => line.level === 40), { what: 'the outage to be logged' });
        expect(membership.following).toBe(false);
        expect(lines.filter((line) => line.level === 40)).toEqual([expect.objectContaining({ error: expect.objectContaining({ code: 'TARGET_DOWN' }) })]);
      } finally {
        await membership.close();
      }
    } finally {
      await clean();
    }
  });
});

describe.runIf(list.some((r) => r.name === 'incus'))('Incus remote certificates', () => {
  // A client of its own (INCUS_CONF): the remote as `remote add` would write it, with the
  // server's certificate as accepted then, and a client certificate incusd does not trust.
  async function ownClient(serverCert: string): Promise<void> {
    const dir = await tempDir();
    await mkdir(path.join(dir, 'servercerts'));
    await writeFile(path.join(dir, 'config.yml'), `default-remote: local\nremotes:\n  ${INCUS_REMOTE}:\n    addr: https://127.0.0.1:18443\n    auth_type: tls\n    protocol: incus\n`);
    await copyFile(serverCert, path.join(dir, 'servercerts', `${INCUS_REMOTE}.crt`));
    setEnv({ INCUS_CONF: dir });
    await execa('incus', ['remote', 'generate-certificate'], { stdin: 'ignore' });
  }

  const attempt = async () => {
    const item = await put(await tempDir(), '/srv/x', 'x');
    const [result] = await push(createTarget('f', { runtime: 'incus', remote: INCUS_REMOTE, container: 'stevedore-t1' }), [item]);
    const listed = createDiscovery({ runtime: 'incus', remote: INCUS_REMOTE, select: { labels: { fleet: 'none' } } }).list(AbortSignal.timeout(20_000));
    return { result, listed };
  };

  it('a client certificate the remote does not trust is PERMISSION_DENIED, for a push and for discovery', async () => {
    await ownClient('/var/lib/incus/server.crt');
    const { result, listed } = await attempt();
    expect(result).toMatchObject({ ok: false, error: { code: 'PERMISSION_DENIED', message: expect.stringContaining('does not trust this client') } });
    await expect(listed).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
  });

  it('a remote whose certificate is not the one accepted when it was added is PERMISSION_DENIED', async () => {
    const other = path.join(await tempDir(), 'other.crt');
    await execa('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${other}.key`, '-out', other, '-subj', '/CN=other', '-days', '1']);
    await ownClient(other);
    const { result, listed } = await attempt();
    expect(result).toMatchObject({ ok: false, error: { code: 'PERMISSION_DENIED', message: expect.stringContaining('not the one trusted') } });
    await expect(listed).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
  });
});
