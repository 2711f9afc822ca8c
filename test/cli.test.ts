// The CLI as users run it: compiled by tsc and spawned with node (helpers/cli.ts).
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanEnv, cli, root, start, useBuiltCli } from './helpers/cli.js';
import { tempDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

const exampleFile = path.join(root, 'config.example.yaml');
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };

useBuiltCli();

const lines = (text: string) => text.split('\n').filter((line) => line !== '');

/** Asserts that stderr is only `FILE:LINE:COL: message` lines: no stack trace, no frames. */
function expectOnlyProblemLines(stderr: string, file: string): string[] {
  const printed = lines(stderr);
  expect(printed.length).toBeGreaterThan(0);
  for (const line of printed) {
    expect(line.startsWith(`${file}:`), line).toBe(true);
    expect(line.slice(file.length), line).toMatch(/^:\d+:\d+: \S/);
    expect(line).not.toMatch(/^\s+at /);
  }
  expect(stderr).not.toMatch(/\n\s+at /);
  expect(stderr).not.toMatch(/Error:/);
  return printed;
}

describe('--version and --help', () => {
  it.each([{ args: ['--version'] }, { args: ['-v'] }, { args: ['run', '--version'] }])('$args prints package.json\'s version', async ({ args }) => {
    const result = await cli(args);
    expect(result).toMatchObject({ code: 0, stdout: `${pkg.version}\n`, stderr: '' });
  });

  it.each([{ args: ['--help'] }, { args: ['-h'] }, { args: [] }])('$args prints the overview of commands', async ({ args }) => {
    const result = await cli(args);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/^stevedore — /);
    expect(result.stdout).toContain('Usage: stevedore <command> [options]');
    for (const command of ['run [-c FILE]', 'validate [-c FILE]', 'push [-c FILE] LOCAL_FILE TARGET:/ABS/PATH', 'schema']) expect(result.stdout).toContain(`  ${command}`);
    expect(result.stdout).toContain('$STEVEDORE_CONFIG');
  });

  it.each([
    ['run', 'Usage: stevedore run [-c FILE]'],
    ['validate', 'Usage: stevedore validate [-c FILE]'],
    ['push', 'Usage: stevedore push [-c FILE] LOCAL_FILE TARGET:/ABS/PATH'],
    ['schema', 'Usage: stevedore schema'],
  ])('%s --help prints that command\'s usage', async (command, usage) => {
    for (const flag of ['--help', '-h']) {
      const result = await cli([command, flag]);
      expect(result.code).toBe(0);
      expect(result.stdout.split('\n')[0]).toBe(usage);
      expect(result.stdout).not.toContain('Commands:');
    }
  });

  it('an unknown command exits 2 and shows the help on stderr', async () => {
    const result = await cli(['frobnicate']);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr.split('\n')[0]).toBe('stevedore: unknown command "frobnicate"');
    expect(result.stderr).toContain('Usage: stevedore <command> [options]');
  });

  it('an unknown option or a missing option value is a usage error: exit 2, one line, no stack', async () => {
    for (const args of [['validate', '--frobnicate'], ['validate', '-c']]) {
      const result = await cli(args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stdout).toBe('');
      const [first, ...rest] = lines(result.stderr);
      expect(first).toMatch(/^stevedore: .*(frobnicate|'-c, --config <value>' argument missing)/);
      expect(rest).toEqual(['Run "stevedore --help" for usage.']);
    }
  });
});

describe('operands a command does not take', () => {
  it('are a usage error (exit 2): `validate other.yaml` does not check ./stevedore.yaml and say it is valid', async () => {
    const dir = await tempDir();
    await writeFile(path.join(dir, 'stevedore.yaml'), 'version: 1\ntargets: { box: { runtime: local, root: ./box } }\n');
    await writeFile(path.join(dir, 'other.yaml'), 'version: 2\n');
    const result = await cli(['validate', 'other.yaml'], { cwd: dir });
    expect(result).toMatchObject({ code: 2, stdout: '' });
    expect(lines(result.stderr)).toEqual(['stevedore: validate: unexpected operand "other.yaml" (a config file is given with -c FILE)', 'Run "stevedore validate --help" for usage.']);
    for (const args of [['status', 'x'], ['reload', 'x'], ['run', 'x'], ['schema', 'x'], ['dead-letter', 'purge', 'AAAAAAAAAAAAAAAAAAAAAA', 'x']]) {
      expect((await cli(args, { cwd: dir })).code, args.join(' ')).toBe(2);
    }
    expect(await readFile(path.join(dir, 'other.yaml'), 'utf8')).toBe('version: 2\n');
  });
});

describe('validate', () => {
  it('the example config is valid: one summary line per target, route and legacy rule', async () => {
    const result = await cli(['validate', '-c', exampleFile]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(lines(result.stdout)).toEqual([
      `${exampleFile}: valid`,
      `target sandbox: local ${path.join(root, 'var/containers/sandbox')}`,
      'route sandbox-files: 127.0.0.1:8080/drop/sandbox/… → sandbox:/srv/files (token)',
      'legacy: POST /upload → sandbox:/srv/legacy/…',
      `watch sandbox-drop: ${path.join(root, 'var/drop')} (drop) → sandbox:/srv/dropped`,
    ]);
  });

  it('summarizes every runtime, route and watch (validate does not start anything)', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'full.yaml');
    await mkdir(path.join(dir, 'inbox')); // a watched directory must exist
    await writeFile(
      file,
      [
        'version: 1',
        'targets:',
        '  box: { runtime: local, root: ./box }',
        '  web: { runtime: incus, container: "remote:web01" }',
        '  app: { runtime: docker, container: app1 }',
        'http:',
        '  listen: 0.0.0.0:9000',
        '  routes:',
        '    - { name: open, path: /open, target: box, dest: /srv/open, token: "${OPEN_TOKEN}" }',
        '    - { name: web, path: /drop/web, target: web, dest: /var/www, token: t }',
        'watch:',
        '  - { name: inbox, path: ./inbox, target: app, dest: /data, mode: mirror }',
        '',
      ].join('\n'),
    );
    const result = await cli(['validate', '-c', file], { env: cleanEnv({ OPEN_TOKEN: 'x' }) });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(lines(result.stdout)).toEqual([
      `${file}: valid`,
      `target box: local ${path.join(dir, 'box')}`,
      'target web: incus remote:web01',
      'target app: docker app1',
      'route open: 0.0.0.0:9000/open/… → box:/srv/open (token)',
      'route web: 0.0.0.0:9000/drop/web/… → web:/var/www (token)',
      `watch inbox: ${path.join(dir, 'inbox')} (mirror) → app:/data`,
    ]);
  });

  it('a fleet whose runtime does not answer is said so under its target, and the config is still valid', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'fleet.yaml');
    const socket = path.join(dir, 'no-daemon.sock');
    await writeFile(file, ['version: 1', 'targets:', `  web: { runtime: docker, select: { labels: { app: web }, name: "web-*" }, host: "unix://${socket}" }`, ''].join('\n'));
    const result = await cli(['validate', '-c', file]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const [, target, now, ...rest] = lines(result.stdout);
    expect(target).toBe(`target web: docker fleet [app=web, name web-*] on unix://${socket}`);
    // The daemon's socket is not there (or docker is not installed): either way no answer.
    expect(now).toMatch(/^ {2}what it matches now is not known: docker did not answer it \((the daemon is not running|docker: command not found)/);
    expect(rest).toEqual([]);
  });

  it('a broken config exits 2 with every problem as FILE:LINE:COL lines on stderr, and nothing else', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'broken.yaml');
    await writeFile(
      file,
      [
        'version: 2', //                                                        1
        'targets:', //                                                          2
        '  box: { runtime: local, root: ./box, colour: red }', //               3
        'http:', //                                                             4
        '  listen: 127.0.0.1:8080', //                                          5
        '  max_body: huge', //                                                  6
        '  routes:', //                                                         7
        '    - { name: r, path: /r, target: nope, dest: /d, token: "${NO_SUCH_VAR}" }', // 8
        '',
      ].join('\n'),
    );
    const result = await cli(['validate', '-c', file]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(expectOnlyProblemLines(result.stderr, file)).toEqual([
      `${file}:1:10: version: expected version: 1`,
      `${file}:3:39: targets.box.colour: unknown key`,
      `${file}:6:13: http.max_body: expected a size like "512KiB" or "2GiB", or a whole number of bytes`,
      `${file}:8:36: http.routes.0.target: unknown target "nope" (targets: box)`,
      `${file}:8:59: http.routes.0.token: environment variable NO_SUCH_VAR is not set (use \${NO_SUCH_VAR:-default} for a default)`,
    ]);
  });

  it('a time limit of 0 is a problem, not a limit that cuts every push or never cuts a quiet body', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'zero.yaml');
    await writeFile(
      file,
      [
        'version: 1', //                                                        1
        'targets: { box: { runtime: local, root: ./box } }', //                 2
        'defaults: { push_timeout: 0ms }', //                                   3
        'http:', //                                                             4
        '  listen: 127.0.0.1:8080', //                                          5
        '  idle_timeout: 0s', //                                                6
        '  upload_expiry: 0h', //                                               7
        '  routes: [{ name: r, path: /r, target: box, dest: /d, push_timeout: 0.0001s }]', // 8
        '',
      ].join('\n'),
    );
    const result = await cli(['validate', '-c', file]);
    expect(result.code).toBe(2);
    expect(expectOnlyProblemLines(result.stderr, file)).toEqual([
      `${file}:3:27: defaults.push_timeout: expected a duration over 0`,
      `${file}:6:17: http.idle_timeout: expected a duration over 0`,
      `${file}:7:18: http.upload_expiry: expected a duration over 0`,
      `${file}:8:70: http.routes.0.push_timeout: expected a duration over 0`,
    ]);
  });

  it('a watch of the config file\'s own directory, which holds the default state_dir and the target, exits 2 naming both keys', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'nested.yaml');
    await writeFile(file, ['version: 1', 'targets:', '  box: { runtime: local, root: ./box }', 'watch:', '  - { name: here, path: ., target: box, dest: /d }', ''].join('\n'));
    const result = await cli(['validate', '-c', file]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(expectOnlyProblemLines(result.stderr, file)).toEqual([
      `${file}:3:32: targets.box.root: ${path.join(dir, 'box')} lies inside watch.0.path ${dir}: each landed file would be seen by the watch and pushed again`,
      `${file}:5:25: watch.0.path: ${dir} contains state_dir ${path.join(dir, 'var/stevedore')}: the agent would push, and in drop mode delete, its own spool and journal`,
    ]);
  });

  it('a file that is not UTF-8 exits 2 with the first bad byte\'s position, not a path with U+FFFD in it', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'latin1.yaml');
    // "./café" saved as Latin-1: é is the lone byte 0xE9.
    await writeFile(file, Buffer.concat([Buffer.from('version: 1\n# caf\u00e9 in UTF-8\ntargets: { box: { runtime: local, root: ./caf'), Buffer.from([0xe9]), Buffer.from(' } }\n')]));
    const result = await cli(['validate', '-c', file]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(expectOnlyProblemLines(result.stderr, file)).toEqual([`${file}:3:46: not valid UTF-8: save the config file as UTF-8`]);
  });

  it('a YAML syntax error exits 2 with positions, no stack trace', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'syntax.yaml');
    await writeFile(file, 'version: 1\ntargets: { box: [\n  *alias\n');
    const result = await cli(['validate', '-c', file]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expectOnlyProblemLines(result.stderr, file);
  });

  it('a missing file exits 2 with one clear line', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'nope.yaml');
    const result = await cli(['validate', '-c', file]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(`${file}: cannot read the config file: ENOENT: no such file or directory, open '${file}'\n`);
  });

  it('-c falls back to $STEVEDORE_CONFIG, then ./stevedore.yaml', async () => {
    const dir = await tempDir();
    const fromEnv = path.join(dir, 'from-env.yaml');
    const local = path.join(dir, 'stevedore.yaml');
    const other = path.join(dir, 'other.yaml');
    const config = 'version: 1\ntargets:\n  box: { runtime: local, root: ./box }\n';
    await Promise.all([writeFile(fromEnv, config), writeFile(local, config), writeFile(other, config)]);

    const viaEnv = await cli(['validate'], { cwd: dir, env: cleanEnv({ STEVEDORE_CONFIG: fromEnv }) });
    expect(viaEnv.code).toBe(0);
    expect(lines(viaEnv.stdout)[0]).toBe(`${fromEnv}: valid`);

    const flagWins = await cli(['validate', '-c', other], { cwd: dir, env: cleanEnv({ STEVEDORE_CONFIG: fromEnv }) });
    expect(lines(flagWins.stdout)[0]).toBe(`${other}: valid`);

    const longFlag = await cli(['validate', `--config=${other}`], { cwd: dir });
    expect(lines(longFlag.stdout)[0]).toBe(`${other}: valid`);

    for (const env of [cleanEnv(), cleanEnv({ STEVEDORE_CONFIG: '' })]) {
      const viaCwd = await cli(['validate'], { cwd: dir, env });
      expect(viaCwd.code).toBe(0);
      expect(lines(viaCwd.stdout)[0]).toBe(`${local}: valid`);
    }

    const nowhere = await cli(['validate'], { cwd: path.join(dir, '..'), env: cleanEnv({ STEVEDORE_CONFIG: path.join(dir, 'missing.yaml') }) });
    expect(nowhere.code).toBe(2);
    expect(nowhere.stderr).toMatch(/missing\.yaml: cannot read the config file: ENOENT/);
  });
});

describe('schema', () => {
  it('prints a JSON Schema that rejects unknown keys', async () => {
    const result = await cli(['schema']);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    type Schema = { $schema?: string; type?: string; required?: string[]; additionalProperties?: unknown; properties: Record<string, Schema> };
    const schema = JSON.parse(result.stdout) as Schema;
    expect(schema.$schema).toMatch(/json-schema\.org/);
    expect(schema.type).toBe('object');
    expect(schema.additionalProperties).toBe(false);
    expect(Object.keys(schema.properties).sort()).toEqual(['defaults', 'http', 'log', 'queue', 'retain_max', 'state_dir', 'targets', 'version', 'watch']);
    expect(schema.required).toEqual(expect.arrayContaining(['version', 'targets']));
    expect(schema.properties.targets).toBeDefined();
    // nested sections are closed too, so editors flag typos there as well
    for (const section of ['log', 'defaults', 'queue', 'http'] as const) {
      expect(schema.properties[section]?.additionalProperties, section).toBe(false);
    }
    // the input side: durations and sizes are the strings a user writes
    expect(JSON.stringify(schema.properties.http)).toContain('"idle_timeout":{"default":"60s"');
  });
});

describe('run', () => {
  async function writeRunConfig(dir: string, extra = ''): Promise<string> {
    const file = path.join(dir, 'stevedore.yaml');
    await writeFile(
      file,
      [
        'version: 1',
        'state_dir: ./state', // relative to the config file, not to the cwd
        'log: { level: info, format: auto }', // stdout is a pipe: auto means JSON lines
        'targets:',
        '  box: { runtime: local, root: ./box }',
        'queue: { shutdown_grace: 2s }',
        'http:',
        '  listen: 127.0.0.1:0',
        '  min_free: 1MiB',
        '  routes:',
        '    - { name: files, path: /drop/files, target: box, dest: /srv/files }',
        extra,
        '',
      ].join('\n'),
    );
    return file;
  }

  /** Collects stdout as parsed JSON log lines; `listening` resolves with the bound address. */
  function watchLogs(child: ChildProcessWithoutNullStreams) {
    const logs: Record<string, unknown>[] = [];
    const raw: string[] = [];
    let buffered = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const complete = buffered.split('\n');
      buffered = complete.pop() ?? '';
      for (const line of complete) {
        raw.push(line);
        logs.push(JSON.parse(line) as Record<string, unknown>); // throws (and fails the test) on a non-JSON line
      }
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
    return { logs, raw, stderr: () => stderr, exited };
  }

  // `listen: 127.0.0.1:0` lets the OS pick a free port (no race with other tests); the
  // agent logs the address it bound, so the port is read from that log line.
  async function listeningUrl(logs: Record<string, unknown>[], stderr: () => string): Promise<string> {
    const bound = (log: Record<string, unknown>) => typeof log.address === 'string' && /^127\.0\.0\.1:[1-9]\d*$/.test(log.address);
    const line = await waitFor(() => logs.find(bound), { timeoutMs: 10_000, what: `a log line with the bound address (stderr: ${stderr()})` });
    return `http://${String(line.address)}`;
  }

  it('accepts an upload, pushes it, and on SIGTERM drains and exits 0 with JSON log lines', async () => {
    const dir = await tempDir();
    const file = await writeRunConfig(dir);
    const child = start(['run', '-c', file], { cwd: tmpdir() });
    const { logs, raw, stderr, exited } = watchLogs(child);
    const url = await listeningUrl(logs, stderr);

    const response = await fetch(`${url}/drop/files/hello/world.txt`, { method: 'PUT', body: 'hello from the cli test\n' });
    expect(response.status).toBe(202);
    const task = (await response.json()) as { id: string; dest: string };
    expect(task.dest).toBe('/srv/files/hello/world.txt');
    const landed = path.join(dir, 'box', 'srv', 'files', 'hello', 'world.txt');
    await waitFor(async () => (await readFile(landed, 'utf8').catch(() => '')) === 'hello from the cli test\n', { what: landed });
    expect(existsSync(path.join(dir, 'state'))).toBe(true); // state_dir resolved against the config file

    const stopAt = Date.now();
    child.kill('SIGTERM');
    const exit = await Promise.race([exited, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no exit 5 s after SIGTERM')), 5000))]);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(Date.now() - stopAt).toBeLessThan(5000);
    expect(stderr()).toBe('');
    expect(raw.length).toBeGreaterThan(3);
    for (const log of logs) expect(log).toMatchObject({ level: expect.any(Number), time: expect.any(Number), pid: child.pid, msg: expect.any(String) });
    const messages = logs.map((log) => log.msg);
    expect(logs).toContainEqual(expect.objectContaining({ msg: 'stopping: draining in-flight pushes', signal: 'SIGTERM' }));
    expect(messages.at(-1)).toMatch(/^stopped/);
  });

  it('a second agent on the same state_dir exits 1 before touching it; the first runs on, and a pid file left by a crash is taken over', async () => {
    const dir = await tempDir();
    const file = await writeRunConfig(dir);
    const first = start(['run', '-c', file]);
    const firstLogs = watchLogs(first);
    const url = await listeningUrl(firstLogs.logs, firstLogs.stderr);
    const pidPath = path.join(dir, 'state', 'agent.pid');
    expect(await readFile(pidPath, 'utf8')).toBe(`${first.pid}\n`);

    const second = await cli(['run', '-c', file]);
    expect(second.code).toBe(1);
    const said = lines(second.stdout).map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(said).toContainEqual(expect.objectContaining({ level: 60, pid: expect.any(Number), msg: `cannot start: another agent (pid ${first.pid}) runs on ${path.join(dir, 'state')}` }));
    expect(said.some((log) => /journal|recover/i.test(String(log.msg)))).toBe(false);
    expect(await readFile(pidPath, 'utf8')).toBe(`${first.pid}\n`);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);

    first.kill('SIGKILL');
    await firstLogs.exited;
    expect(await readFile(pidPath, 'utf8')).toBe(`${first.pid}\n`); // left by the "crash"
    const third = start(['run', '-c', file]);
    const thirdLogs = watchLogs(third);
    await listeningUrl(thirdLogs.logs, thirdLogs.stderr);
    expect(await readFile(pidPath, 'utf8')).toBe(`${third.pid}\n`);
    third.kill('SIGTERM');
    expect(await thirdLogs.exited).toEqual({ code: 0, signal: null });
  });

  it('SIGINT stops it the same way', async () => {
    const dir = await tempDir();
    const child = start(['run', '-c', await writeRunConfig(dir)]);
    const { logs, stderr, exited } = watchLogs(child);
    await listeningUrl(logs, stderr);
    child.kill('SIGINT');
    expect(await exited).toEqual({ code: 0, signal: null });
    expect(logs).toContainEqual(expect.objectContaining({ msg: 'stopping: draining in-flight pushes', signal: 'SIGINT' }));
  });

  it('an invalid config exits 2 before anything starts, with FILE:LINE:COL lines only', async () => {
    const dir = await tempDir();
    const file = await writeRunConfig(dir, 'watch: true');
    const result = await cli(['run', '-c', file]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe(''); // no logger yet: nothing logged
    expect(expectOnlyProblemLines(result.stderr, file)).toEqual([`${file}:12:8: watch: Invalid input: expected array, received boolean`]);
    expect(existsSync(path.join(dir, 'state'))).toBe(false);
  });

  it('a listen address already taken exits 1 with a one-line fatal message, no stack', async () => {
    const dir = await tempDir();
    const taken = createServer().listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const { port } = taken.address() as AddressInfo;
    try {
      const file = await writeRunConfig(dir);
      await writeFile(file, (await readFile(file, 'utf8')).replace('127.0.0.1:0', `127.0.0.1:${port}`));
      const result = await cli(['run', '-c', file]);
      expect(result.code).toBe(1);
      const fatal = lines(result.stdout).map((line) => JSON.parse(line) as Record<string, unknown>).filter((log) => log.level === 60);
      expect(fatal).toEqual([expect.objectContaining({ code: 'LISTEN_FAILED', msg: `cannot start: cannot listen on 127.0.0.1:${port}: listen EADDRINUSE: address already in use 127.0.0.1:${port}` })]);
      expect(fatal[0]).not.toHaveProperty('err');
    } finally {
      taken.close();
    }
  });

  it('a runtime whose CLI is not installed exits 1 with a one-line fatal message naming it', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'docker.yaml');
    await mkdir(path.join(dir, 'elsewhere'));
    await writeFile(file, 'version: 1\nstate_dir: ./state\ntargets:\n  web: { runtime: docker, container: web01 }\n');
    const result = await cli(['run', '-c', file], { cwd: path.join(dir, 'elsewhere'), env: { ...cleanEnv(), PATH: path.join(dir, 'elsewhere') } });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('');
    const logs = lines(result.stdout).map((line) => JSON.parse(line) as Record<string, unknown>);
    const fatal = logs.filter((log) => log.level === 60);
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toMatchObject({ code: 'RUNTIME_MISSING', msg: expect.stringMatching(/^cannot start: target "web": runtime docker needs the "docker" command, which is not on PATH/) });
    expect(String(fatal[0]?.msg)).not.toContain('\n');
    expect(JSON.stringify(fatal[0])).not.toContain('stack'); // a known condition, not a crash
  });
});
