// Crash safety, for real: a `stevedore run` process pushing HTTP uploads and drop-folder
// files into a real Incus container (then LXD's, then a local target) is killed
// with SIGKILL at random moments, twenty times, and started again. In the end every
// file that got a 202, and every file put in the drop folder, is in the target with its
// exact bytes (sha256 inside the container), no upload that never got a 202 is there
// half-written, and nothing is left staged: not in the spool, not under a temp name
// in the target.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { start, useBuiltCli } from '../helpers/cli.js';
import { freePort } from '../helpers/http.js';
import { tempDir } from '../helpers/temp.js';
import { waitFor } from '../helpers/wait.js';
import { runtimesToTest, type RuntimeUnderTest } from './runtimes.js';

useBuiltCli();

const KILLS = 20;
const UPLOADS_PER_ROUND = 24;
const DROPS_PER_ROUND = 6;
const containers = (await runtimesToTest()).filter((r) => r.name === 'incus' || r.name === 'lxd');

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

// Mostly small files, some past the in-memory threshold, a few big enough to be cut mid-body.
const body = (i: number) => randomBytes([512, 4096, 300 * 1024, 3 * 2 ** 20][i % 4] as number);

function put(port: number, rel: string, data: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'PUT', path: `/drop/c/${rel}`, headers: { 'content-length': data.length } }, (res) => {
      res.resume().once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('error', reject);
    req.end(data);
  });
}

/** Where the files land, and how the test reads them back. */
interface Place {
  /** The `c` target's YAML. */
  target: string;
  /** name → sha256 of every regular file directly in `dir` (a path in the target). */
  files(dir: string): Promise<Map<string, string>>;
  /** Hidden temp names (`.stevedore-…`) anywhere under /srv. */
  leftovers(): Promise<number>;
  remove(): Promise<void>;
}

async function containerPlace(runtime: RuntimeUnderTest): Promise<Place> {
  if (runtime.missing) throw new Error(`${runtime.name} is required under CI=true but cannot be used: ${runtime.missing}`);
  const container = await runtime.create('sd-crash');
  const sh = (script: string) => runtime.sh(container, script);
  return {
    target: `{ runtime: ${runtime.name}, container: ${container} }`,
    async files(where) {
      const lines = (await sh(`cd ${where} 2>/dev/null && for f in *; do [ -f "$f" ] && echo "$(sha256sum "$f" | cut -c1-64) $f"; done; true`)).split('\n');
      return new Map(lines.filter(Boolean).map((line) => line.split(' ').reverse() as [string, string]));
    },
    leftovers: async () => Number(await sh('find /srv -name ".stevedore-*" | wc -l')),
    remove: () => runtime.remove(container),
  };
}

async function localPlace(): Promise<Place> {
  const root = await tempDir();
  const under = async (dir: string) => (await readdir(path.join(root, dir)).catch(() => [] as string[]));
  return {
    target: `{ runtime: local, root: ${root} }`,
    async files(where) {
      const names = (await under(where)).filter((name) => !name.startsWith('.'));
      return new Map(await Promise.all(names.map(async (name) => [name, sha(await readFile(path.join(root, where, name)))] as [string, string])));
    },
    leftovers: async () => (await readdir(path.join(root, 'srv'), { recursive: true })).filter((name) => path.basename(String(name)).startsWith('.stevedore-')).length,
    remove: async () => undefined,
  };
}

const places = [
  ...containers.map((runtime) => ({ name: runtime.name, make: () => containerPlace(runtime) })),
  { name: 'local', make: localPlace },
];

describe.each(places)('crash safety ($name)', ({ make }) => {
  it(`loses nothing across ${KILLS} SIGKILLs at random moments`, async () => {
    const place = await make();
    try {
      const dir = await tempDir();
      const drop = path.join(dir, 'drop');
      await mkdir(drop);
      const port = await freePort();
      const file = path.join(dir, 'stevedore.yaml');
      await writeFile(file, `version: 1
state_dir: ${path.join(dir, 'state')}
log: { level: warn, format: json }
targets: { c: ${place.target} }
defaults: { retry: { attempts: 50, initial_delay: 50ms, max_delay: 500ms } }
queue: { shutdown_grace: 1s }
http: { listen: 127.0.0.1:${port}, min_free: 1MiB, routes: [{ name: c, path: /drop/c, target: c, dest: /srv/c }] }
watch: [{ name: w, path: ${drop}, target: c, dest: /srv/w, settle: 50ms }]
`);
      const sent = new Map<string, string>(); // every upload tried: name → sha256
      const accepted = new Set<string>();
      const dropped = new Map<string, string>();
      const healthy = () => new Promise<boolean>((resolve) => {
        request({ host: '127.0.0.1', port, path: '/healthz' }, (res) => resolve(res.resume().statusCode === 200)).once('error', () => resolve(false)).end();
      });
      for (let round = 0; round <= KILLS; round += 1) {
        const agent = start(['run', '-c', file]);
        await waitFor(healthy, { timeoutMs: 30_000, intervalMs: 20, what: `the agent to listen (round ${round})` });
        if (round === KILLS) {
          // The last start: no kill; wait for everything to land, then stop cleanly.
          await waitFor(async () => (await readdir(drop)).length === 0 && (await readdir(path.join(dir, 'state/spool'))).length === 0, { timeoutMs: 120_000, intervalMs: 200, what: 'the queue to empty' });
          agent.kill('SIGTERM');
          await new Promise((resolve) => agent.once('close', resolve));
          break;
        }
        const uploads = Array.from({ length: UPLOADS_PER_ROUND }, async (_, i) => {
          const name = `r${round}-u${i}.bin`;
          const data = body(i);
          sent.set(name, sha(data));
          const status = await put(port, name, data).catch(() => 0);
          if (status === 202) accepted.add(name);
        });
        for (let i = 0; i < DROPS_PER_ROUND; i += 1) {
          const name = `r${round}-d${i}.bin`;
          const data = body(i);
          // Written under a name the watch ignores, then renamed: the file appears whole.
          await writeFile(path.join(drop, `${name}.part`), data);
          await rename(path.join(drop, `${name}.part`), path.join(drop, name));
          dropped.set(name, sha(data));
        }
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 600));
        agent.kill('SIGKILL');
        await new Promise((resolve) => agent.once('close', resolve));
        await Promise.all(uploads);
      }
      const inContainer = new Map([...(await place.files('/srv/c')), ...(await place.files('/srv/w'))]);
      const lost = [...accepted, ...dropped.keys()].filter((name) => inContainer.get(name) !== (sent.get(name) ?? dropped.get(name)));
      const halfWritten = [...inContainer].filter(([name, hash]) => hash !== (sent.get(name) ?? dropped.get(name)));
      const leftovers = await place.leftovers();
      const staged = (await readdir(path.join(dir, 'state/spool'))).length;
      // What the suite tried and found, for the CI log (the issue asks for these figures).
      process.stdout.write(`crash safety: ${KILLS} kills, ${accepted.size} uploads accepted (${sent.size} tried), ${dropped.size} dropped files, ` +
        `${inContainer.size} landed, ${lost.length} lost, ${halfWritten.length} half-written, ${staged} staged left, ${leftovers} temp names left in the target\n`);
      expect(lost).toEqual([]);
      expect(halfWritten).toEqual([]);
      expect(staged).toBe(0);
      // A push killed with the agent leaves its hidden .stevedore-<tag> names; the
      // restarted agent removes them before its first push into the target.
      expect(leftovers).toBe(0);
      expect(accepted.size).toBeGreaterThan(KILLS); // the kills did not stop every upload
    } finally {
      await place.remove();
    }
  }, 600_000);
});
