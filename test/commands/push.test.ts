// `stevedore push` as users run it (the built CLI) into a local target: real files,
// real modes and inodes. Retries and the container targets: test/runtimes/push.test.ts.
import { chmod, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanEnv, cli, cliOnTerminal, hasScript, useBuiltCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/temp.js';

useBuiltCli();

const USAGE = 'stevedore push [-c FILE] LOCAL_FILE TARGET:/ABS/PATH';

/** A config with two local targets, and a private TMPDIR for the CLI, to see that it cleans up. */
async function setup() {
  const dir = await tempDir();
  const config = path.join(dir, 'stevedore.yaml');
  await writeFile(
    config,
    [
      'version: 1',
      'targets:',
      '  box: { runtime: local, root: ./box }',
      '  spare: { runtime: local, root: ./spare }',
      'defaults:',
      '  mode: "0640"',
      '  dir_mode: "0750"',
      // A retry would wait at least 5 s (equal jitter: half of initial_delay is fixed).
      '  retry: { attempts: 3, initial_delay: 10s, max_delay: 10s }',
      '',
    ].join('\n'),
  );
  const tmp = path.join(dir, 'tmp');
  await mkdir(tmp);
  const source = path.join(dir, 'report.txt');
  await writeFile(source, 'hello\n');
  await chmod(source, 0o600);
  return { dir, config, tmp, source, root: path.join(dir, 'box'), env: cleanEnv({ TMPDIR: tmp }) };
}

const mode = async (file: string) => (await stat(file)).mode & 0o7777;

describe('stevedore push into a local target', () => {
  it('lands the file with the configured modes; the user\'s file keeps its own mode and inode', async () => {
    const { config, tmp, source, root, env } = await setup();
    const before = await stat(source);
    const result = await cli(['push', '-c', config, source, 'box:/srv/in/report.txt'], { env });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`^pushed ${source} → box:/srv/in/report\\.txt \\(6 bytes, 1 attempt, \\d+\\.\\d\\d s\\)\\n$`));
    const landed = path.join(root, 'srv/in/report.txt');
    expect(await readFile(landed, 'utf8')).toBe('hello\n');
    expect([await mode(landed), await mode(path.join(root, 'srv/in')), await mode(path.join(root, 'srv'))]).toEqual([0o640, 0o750, 0o750]);
    // Not chmodded, not hard-linked: the local target does both to what it is given.
    const after = await stat(source);
    expect({ mode: after.mode, ino: after.ino, nlink: after.nlink }).toEqual({ mode: before.mode, ino: before.ino, nlink: 1 });
    expect((await stat(landed)).ino).not.toBe(before.ino);
    expect(await readdir(tmp)).toEqual([]);
  });

  it('shows no progress bar when stderr is not a terminal, even for a file over 8 MiB', async () => {
    const { config, dir, root, env } = await setup();
    const big = path.join(dir, 'big.bin');
    await writeFile(big, Buffer.alloc(9 * 1024 * 1024, 7));
    const result = await cli(['push', '-c', config, big, 'box:/srv/big.bin'], { env });
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toMatch(/^pushed .* \(9437184 bytes, 1 attempt, /);
    expect((await stat(path.join(root, 'srv/big.bin'))).size).toBe(9437184);
  });

  it.runIf(hasScript)('on a terminal, a file over 8 MiB shows its size and the time elapsed (the local target reports no bytes), then clears the line', async () => {
    const { config, dir, source, env } = await setup();
    const big = path.join(dir, 'big.bin');
    await writeFile(big, Buffer.alloc(9 * 1024 * 1024, 7));
    const { code, output } = await cliOnTerminal(['push', '-c', config, big, 'box:/srv/big.bin'], { env });
    expect(code, output).toBe(0);
    const shown = output.replaceAll('\x1b[K', '<erase line>');
    expect(shown).toMatch(/\rstevedore: pushing 9\.4 MB… \d+\.\d s<erase line>/);
    // Cleared before the result line, which is then the only thing left on screen.
    expect(shown).toMatch(/\r<erase line>pushed [^\r\n]+ \(9437184 bytes, 1 attempt, [\d.]+ s\)\r\n$/);

    const small = await cliOnTerminal(['push', '-c', config, source, 'box:/srv/small.txt'], { env });
    expect(small.code, small.output).toBe(0);
    expect(small.output).toMatch(/^pushed [^\r\n]+ \(6 bytes, 1 attempt, [\d.]+ s\)\r\n$/);
  });

  it.each([
    { why: 'no operands', args: () => [], message: `expected LOCAL_FILE TARGET:/ABS/PATH, got 0 arguments (usage: ${USAGE})` },
    { why: 'one operand', args: (s: string) => [s], message: `expected LOCAL_FILE TARGET:/ABS/PATH, got 1 argument (usage: ${USAGE})` },
    { why: 'three operands', args: (s: string) => [s, 'box:/srv/a', 'box:/srv/b'], message: `expected LOCAL_FILE TARGET:/ABS/PATH, got 3 arguments (usage: ${USAGE})` },
    { why: 'no colon', args: (s: string) => [s, 'box'], message: '"box": expected TARGET:/ABS/PATH' },
    { why: 'no target name', args: (s: string) => [s, ':/srv/a'], message: '":/srv/a": expected TARGET:/ABS/PATH' },
    { why: 'a relative path', args: (s: string) => [s, 'box:srv/a'], message: '"srv/a": path must be absolute: it does not start with "/"' },
    { why: 'a ".." segment', args: (s: string) => [s, 'box:/srv/../etc/passwd'], message: '"/srv/../etc/passwd": path segment 2 is "..": parent references are not allowed' },
    { why: 'a control character', args: (s: string) => [s, 'box:/srv/a\nb'], message: '"/srv/a\\nb": path segment 2 contains control character U+000A' },
    { why: 'a directory path', args: (s: string) => [s, 'box:/srv/'], message: '"/srv/": expected the path of a file, not of a directory' },
    { why: 'the root', args: (s: string) => [s, 'box:/'], message: '"/": expected the path of a file, not of a directory' },
    { why: 'an unknown target', args: (s: string) => [s, 'nope:/srv/a'], message: 'unknown target "nope" (targets: box, spare)' },
    { why: 'a target name every object has', args: (s: string) => [s, 'constructor:/srv/a'], message: 'unknown target "constructor" (targets: box, spare)' },
    { why: 'a missing local file', args: (s: string) => [`${s}.gone`, 'box:/srv/a'], message: `"SOURCE.gone": ENOENT: no such file or directory, stat 'SOURCE.gone'` },
    { why: 'a directory as the local file', args: (s: string) => [path.dirname(s), 'box:/srv/a'], message: '"DIR": not a regular file' },
  ])('$why is a usage error: exit 2, one line, nothing pushed', async ({ args, message }) => {
    const { config, dir, tmp, source, root, env } = await setup();
    const result = await cli(['push', '-c', config, ...args(source)], { env });
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(`stevedore: push: ${message.replaceAll('SOURCE', source).replaceAll('DIR', dir)}\n`);
    await expect(stat(root)).rejects.toThrow(/ENOENT/);
    expect(await readdir(tmp)).toEqual([]);
  });

  it('a config error is reported as for every command: exit 2, FILE:LINE:COL', async () => {
    const { config, source, env } = await setup();
    await writeFile(config, 'version: 1\ntargets: {}\n');
    const result = await cli(['push', '-c', config, source, 'box:/srv/a'], { env });
    expect(result).toMatchObject({ code: 2, stdout: '', stderr: `${config}:2:1: targets: expected at least one target\n` });
  });

  it('a permanent failure (a directory in the way) exits 1 at once with its code, without retrying', async () => {
    const { config, tmp, source, root, env } = await setup();
    await mkdir(path.join(root, 'srv/taken'), { recursive: true });
    const startedAt = performance.now();
    const result = await cli(['push', '-c', config, source, 'box:/srv/taken'], { env });
    expect(performance.now() - startedAt).toBeLessThan(5000);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^stevedore: push failed: DEST_IS_DIR: [^\n]+\n$/);
    expect(result.stderr).not.toContain('gave up');
    expect(await readdir(path.join(root, 'srv/taken'))).toEqual([]);
    expect(await mode(source)).toBe(0o600);
    expect(await readdir(tmp)).toEqual([]);
  });
});
