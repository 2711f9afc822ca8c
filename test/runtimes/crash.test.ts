// Crash safety, for real: a `stevedore run` process pushing HTTP uploads and drop-folder
// files into a real Incus container is killed with SIGKILL at random moments, twenty
// times, and started again. In the end every file that got a 202, and every file put
// in the drop folder, is in the container with its exact bytes (sha256 inside it), no
// upload that never got a 202 is there half-written, and nothing is left staged.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { start, useBuiltCli } from '../helpers/cli.js';
import { freePort } from '../helpers/http.js';
import { tempDir } from '../helpers/temp.js';
import { waitFor } from '../helpers/wait.js';
import { runtimesToTest } from './runtimes.js';

useBuiltCli();

const KILLS = 20;
const UPLOADS_PER_ROUND = 24;
const DROPS_PER_ROUND = 6;
const incus = (await runtimesToTest()).find((r) => r.name === 'incus');

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

describe.runIf(incus)('crash safety (incus)', () => {
  it(`loses nothing across ${KILLS} SIGKILLs at random moments`, async () => {
    const runtime = incus as NonNullable<typeof incus>;
    if (runtime.missing) throw new Error(`incus is required under CI=true but cannot be used: ${runtime.missing}`);
    const container = await runtime.create('sd-crash');
    try {
      const dir = await tempDir();
      const drop = path.join(dir, 'drop');
      await mkdir(drop);
      const port = await freePort();
      const file = path.join(dir, 'stevedore.yaml');
      await writeFile(file, `version: 1
state_dir: ${path.join(dir, 'state')}
log: { level: warn, format: json }
targets: { c: { runtime: incus, container: ${container} } }
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
      const landed = (where: string) => runtime.sh(container, `cd ${where} 2>/dev/null && for f in *; do [ -f "$f" ] && echo "$(sha256sum "$f" | cut -c1-64) $f"; done; true`);
      const inContainer = new Map([...(await landed('/srv/c')).split('\n'), ...(await landed('/srv/w')).split('\n')]
        .filter(Boolean)
        .map((line) => {
          const [hash, name] = line.split(' ');
          return [name as string, hash as string];
        }));
      const lost = [...accepted, ...dropped.keys()].filter((name) => inContainer.get(name) !== (sent.get(name) ?? dropped.get(name)));
      const halfWritten = [...inContainer].filter(([name, hash]) => hash !== (sent.get(name) ?? dropped.get(name)));
      const leftovers = await runtime.sh(container, 'find /srv -name ".stevedore-*" | wc -l');
      const staged = (await readdir(path.join(dir, 'state/spool'))).length;
      // What the suite tried and found, for the CI log (the issue asks for these figures).
      process.stdout.write(`crash safety: ${KILLS} kills, ${accepted.size} uploads accepted (${sent.size} tried), ${dropped.size} dropped files, ` +
        `${inContainer.size} landed, ${lost.length} lost, ${halfWritten.length} half-written, ${staged} staged left, ${leftovers} staging dirs left in the container\n`);
      expect(lost).toEqual([]);
      expect(halfWritten).toEqual([]);
      expect(staged).toBe(0);
      // A push killed with the agent leaves its hidden .stevedore-<tag> directory; the
      // restarted agent removes it before its first push into the container.
      expect(leftovers).toBe('0');
      expect(accepted.size).toBeGreaterThan(KILLS); // the kills did not stop every upload
    } finally {
      await runtime.remove(container);
    }
  }, 600_000);
});
