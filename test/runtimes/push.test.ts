// `stevedore push` as users run it (the built CLI) into real containers: every runtime
// on this machine, with its retry rules against a stopped and a missing container.
import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, cli, cliOnTerminal, finished, hasScript, start, useBuiltCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/temp.js';
import { waitFor } from '../helpers/wait.js';
import { runtimesToTest, wrapCli, type RuntimeUnderTest } from './runtimes.js';

const list = await runtimesToTest();

useBuiltCli();

const calls = async (log: string) => (await readFile(log, 'utf8')).split('\n').filter(Boolean);

describe.each(list)('$name', (runtime: RuntimeUnderTest) => {
  let container: string;

  beforeAll(async () => {
    if (runtime.missing) throw new Error(`${runtime.name} is required under CI=true but cannot be used: ${runtime.missing}`);
    container = await runtime.create('sd-push');
  }, 60_000);
  afterAll(async () => {
    if (container) await runtime.remove(container);
  }, 60_000);

  /**
   * A config whose target `t` is `name`, a 0600 file to push, and a private TMPDIR for
   * the CLI; its PATH starts with a wrapper that logs each call of the runtime's CLI.
   */
  async function setup(retry: string, name = container) {
    const dir = await tempDir();
    const config = path.join(dir, 'stevedore.yaml');
    await writeFile(
      config,
      [
        'version: 1',
        'targets:',
        `  t: ${JSON.stringify(runtime.target(name))}`,
        'defaults:',
        '  owner: { uid: 33, gid: 44 }',
        '  mode: "0640"',
        '  dir_mode: "0750"',
        `  retry: ${retry}`,
        '  push_timeout: 30s',
        '',
      ].join('\n'),
    );
    const source = path.join(dir, 'notes.txt');
    await writeFile(source, 'from the host\n');
    await chmod(source, 0o600);
    const tmp = path.join(dir, 'tmp');
    await mkdir(tmp);
    const { dir: wrapper, log } = await wrapCli(runtime.command);
    const env = cleanEnv({ TMPDIR: tmp, PATH: `${wrapper}:${process.env.PATH ?? ''}` });
    return { dir, config, source, tmp, log, env };
  }

  // A retry would wait at least 5 s (equal jitter: half of initial_delay is fixed).
  const NO_RETRY = '{ attempts: 3, initial_delay: 10s, max_delay: 10s }';

  it('pushes a file with the configured owner and modes; the host file keeps its own mode', async () => {
    const { config, source, tmp, env } = await setup(NO_RETRY);
    const result = await cli(['push', '-c', config, source, 't:/srv/push/a/notes.txt'], { env });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^pushed .* → t:\/srv\/push\/a\/notes\.txt \(14 bytes, 1 attempt, [\d.]+ s\)\n$/);
    const out = await runtime.sh(container, 'cat /srv/push/a/notes.txt; stat -c "%u:%g %a" /srv/push/a/notes.txt /srv/push/a');
    expect(out.split('\n')).toEqual(['from the host', '33:44 640', '0:0 750']);
    expect((await stat(source)).mode & 0o7777).toBe(0o600);
    expect(await readdir(tmp)).toEqual([]);
  });

  it.runIf(hasScript)('on a terminal, a file over 8 MiB shows percent and rate as the tar stream reads it, then clears the line', async () => {
    const { config, dir, env } = await setup(NO_RETRY);
    const data = Buffer.alloc(9 * 1024 * 1024, 'stevedore ');
    const big = path.join(dir, 'big.bin');
    await writeFile(big, data);
    const { code, output } = await cliOnTerminal(['push', '-c', config, big, 't:/srv/push/big.bin'], { env });
    expect(code, output).toBe(0);
    const shown = output.replaceAll('\x1b[K', '<erase line>');
    expect(shown).toMatch(/\rstevedore: \[[# ]{20}\] +\d+% of 9\.4 MB, \d+\.\d MB\/s<erase line>/);
    expect(shown).toMatch(/\r<erase line>pushed [^\r\n]+ \(9437184 bytes, 1 attempt, [\d.]+ s\)\r\n$/);
    const sum = createHash('sha256').update(data).digest('hex');
    expect(await runtime.sh(container, 'sha256sum /srv/push/big.bin')).toBe(`${sum}  /srv/push/big.bin`);
  });

  it('a container that does not exist fails at once with TARGET_NOT_FOUND: one attempt, exit 1', async () => {
    const { config, source, tmp, log, env } = await setup(NO_RETRY, `${container}-missing`);
    const startedAt = performance.now();
    const result = await cli(['push', '-c', config, source, 't:/srv/push/nowhere.txt'], { env });
    expect(performance.now() - startedAt).toBeLessThan(5000);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^stevedore: push failed: TARGET_NOT_FOUND: [^\n]+\n$/);
    expect(result.stderr).not.toContain('gave up');
    expect(await calls(log)).toHaveLength(1);
    expect(await readdir(tmp)).toEqual([]);
  });

  describe('with the container stopped', () => {
    beforeAll(() => runtime.stop(container), 60_000);
    // Also when a test failed: the next one must find it running.
    afterAll(() => runtime.start(container).catch(() => undefined), 60_000);

    it('SIGINT while retrying ends it at once: exit 1, one line, the temp copy removed', async () => {
      const { config, source, tmp, log, env } = await setup('{ attempts: 5, initial_delay: 20s, max_delay: 20s }');
      const child = start(['push', '-c', config, source, 't:/srv/push/stopped.txt'], { env });
      const result = finished(child, 30_000);
      // The signal handlers are in place before the first call of the runtime's CLI.
      await waitFor(async () => (await calls(log)).length > 0, { timeoutMs: 15_000, what: 'a first attempt' });
      const signalledAt = performance.now();
      child.kill('SIGINT');
      expect(await result).toMatchObject({ code: 1, signal: null, stdout: '', stderr: 'stevedore: push interrupted by SIGINT\n' });
      expect(performance.now() - signalledAt).toBeLessThan(10_000);
      expect(await readdir(tmp)).toEqual([]);
    });

    it('retries while it is stopped and lands the file once it runs again', async () => {
      const { config, source, log, env } = await setup('{ attempts: 60, initial_delay: 100ms, max_delay: 500ms }');
      const result = finished(start(['push', '-c', config, source, 't:/srv/push/later.txt'], { env }), 60_000);
      // A second attempt has begun: the first one surely failed.
      await waitFor(async () => (await calls(log)).length >= 2, { timeoutMs: 15_000, what: 'two attempts' });
      await runtime.start(container);
      const { code, stdout, stderr } = await result;
      expect(stderr).toBe('');
      expect(code).toBe(0);
      const attempts = Number(/\(14 bytes, (\d+) attempts, [\d.]+ s\)\n$/.exec(stdout)?.[1]);
      expect(attempts).toBeGreaterThanOrEqual(2);
      expect(await runtime.sh(container, 'cat /srv/push/later.txt')).toBe('from the host');
    });
  });
});
