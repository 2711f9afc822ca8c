import { readFileSync } from 'node:fs';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigError, loadConfig, parseConfig, type Config } from '../../src/config/load.js';
import { fileOptionsFor } from '../../src/config/resolve.js';
import { StevedoreError } from '../../src/errors.js';
import { tempDir } from '../helpers/temp.js';

const exampleFile = fileURLToPath(new URL('../../config.example.yaml', import.meta.url));
const exampleText = readFileSync(exampleFile, 'utf8');

/** YAML text from lines, so a test can count line numbers at a glance. */
const yaml = (...lines: string[]) => `${lines.join('\n')}\n`;

/** The smallest valid config, plus `more` lines appended at the top level. */
const minimal = (...more: string[]) =>
  yaml(
    'version: 1', //                                   1
    'targets:', //                                     2
    '  box: { runtime: local, root: /srv/box }', //    3
    ...more,
  );

/** Parses `text` as x.yaml and returns the printed problem lines; fails if it parses. */
function problems(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  let caught: unknown;
  try {
    parseConfig(text, 'x.yaml', env);
  } catch (error) {
    caught = error;
  }
  expect(caught, 'expected a ConfigError').toBeInstanceOf(ConfigError);
  const error = caught as ConfigError;
  expect(error.code).toBe('CONFIG_INVALID');
  expect(error.problems.length).toBe(error.message.split('\n').length);
  return error.message.split('\n');
}

const parse = (text: string, env: NodeJS.ProcessEnv = {}, file = '/etc/stevedore/x.yaml'): Config => parseConfig(text, file, env);

describe('the example config', () => {
  it('parses with defaults applied and units turned into numbers', async () => {
    const config = await loadConfig(exampleFile, {});
    const dir = path.dirname(exampleFile);
    expect(config.file).toBe(exampleFile);
    expect(config.version).toBe(1);
    expect(config.state_dir).toBe(path.join(dir, 'var/stevedore'));
    expect(config.log).toEqual({ level: 'info', format: 'auto' });
    expect(config.targets).toEqual({ sandbox: { runtime: 'local', root: path.join(dir, 'var/containers/sandbox') } });
    expect(config.defaults).toEqual({
      mode: 0o644,
      dir_mode: 0o755,
      retry: { attempts: 5, initial_delay: 500, max_delay: 30_000 },
      push_timeout: 300_000,
    });
    expect(config.queue).toEqual({
      capacity: 1000,
      concurrency: 4,
      per_target: 2,
      batch_files: 500, // default
      batch_bytes: 64 * 2 ** 20, // default "64MiB"
      shutdown_grace: 30_000, // default "30s"
    });
    expect(config.http).toEqual({
      listen: '127.0.0.1:8080',
      max_body: 2 * 2 ** 30,
      idle_timeout: 60_000,
      min_free: 256 * 2 ** 20,
      allow_anonymous: false,
      max_receiving: 64,
      min_rate: 1024,
      allowed_hosts: [],
      allowed_origins: [],
      ui: true,
      upload_expiry: 24 * 3600_000, // default "24h"
      routes: [{ name: 'sandbox-files', path: '/drop/sandbox', target: 'sandbox', dest: '/srv/files', token: 'change-me', retain: false }],
      legacy: [{ target: 'sandbox', path_prefix: '/srv/legacy', token: 'change-me-too' }],
    });
    expect(config.watch).toEqual([
      {
        name: 'sandbox-drop',
        path: path.join(path.dirname(config.file), 'var/drop'),
        target: 'sandbox',
        dest: '/srv/dropped',
        mode: 'drop',
        ignore: [],
        settle: 300,
        initial: true,
        delete: false,
        after_push: null,
        poll: false,
        retain: false,
      },
    ]);
  });

  it('takes tokens from the environment when set', () => {
    const config = parseConfig(exampleText, exampleFile, { SANDBOX_TOKEN: 'from-env', LEGACY_TOKEN: 'legacy-env' });
    expect(config.http?.routes[0]?.token).toBe('from-env');
    expect(config.http?.legacy[0]?.token).toBe('legacy-env');
  });

  it('is deeply frozen', () => {
    const config = parseConfig(exampleText, exampleFile, {});
    const frozen = [config, config.targets, config.targets.sandbox, config.defaults, config.defaults.retry, config.queue, config.http, config.http?.routes, config.http?.routes[0], config.http?.legacy, config.watch, config.log];
    for (const value of frozen) expect(Object.isFrozen(value)).toBe(true);
    expect(() => {
      (config.queue as { capacity: number }).capacity = 1;
    }).toThrow(TypeError);
    expect(() => {
      (config.http?.routes as unknown as unknown[]).push({});
    }).toThrow(TypeError);
  });

  it('a missing file is a CONFIG_UNREADABLE error naming the file', async () => {
    const missing = path.join(path.dirname(exampleFile), 'no-such-config.yaml');
    const error: unknown = await loadConfig(missing, {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StevedoreError);
    expect(error).not.toBeInstanceOf(ConfigError);
    expect((error as StevedoreError).code).toBe('CONFIG_UNREADABLE');
    expect((error as StevedoreError).message).toMatch(new RegExp(`^${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot read the config file: ENOENT`));
  });
});

describe('defaults and resolution', () => {
  it('fills in every default on a minimal config', () => {
    const config = parse(minimal());
    expect(config.state_dir).toBe('/etc/stevedore/var/stevedore');
    expect(config.log).toEqual({ level: 'info', format: 'auto' });
    expect(config.defaults).toEqual({ mode: 0o644, dir_mode: 0o755, retry: { attempts: 5, initial_delay: 500, max_delay: 30_000 }, push_timeout: 300_000 });
    expect(config.queue).toEqual({ capacity: 1000, concurrency: 4, per_target: 2, batch_files: 500, batch_bytes: 64 * 2 ** 20, shutdown_grace: 30_000 });
    expect(config.http).toBeUndefined();
    expect(config.watch).toEqual([]);
  });

  it('fills in http and watch defaults, and parses partial retry overrides', () => {
    const config = parse(
      minimal(
        'http:',
        '  listen: "[::1]:9000"',
        '  routes:',
        '    - { name: r, path: /r, target: box, dest: /d, mode: "600", retry: { attempts: 2 } }',
        'watch:',
        '  - { name: w, path: ./in, target: box, dest: /d }',
        '  - { name: m, path: /abs/in, target: box, dest: /d, mode: mirror, delete: true, file_mode: "0640" }',
        '  - { name: a, path: in2, target: box, dest: /d, after_push: ../done }',
      ),
    );
    expect(config.http).toMatchObject({ listen: '[::1]:9000', max_body: 2 ** 31, idle_timeout: 60_000, min_free: 2 ** 30, allow_anonymous: false, legacy: [] });
    expect(config.http?.routes[0]).toEqual({ name: 'r', path: '/r', target: 'box', dest: '/d', mode: 0o600, retry: { attempts: 2 }, retain: false });
    expect(config.watch[0]).toEqual({
      name: 'w',
      path: '/etc/stevedore/in',
      target: 'box',
      dest: '/d',
      ignore: [],
      settle: 300,
      initial: true,
      delete: false,
      after_push: null,
      poll: false,
      retain: false,
      mode: 'drop',
    });
    expect(config.watch[1]).toMatchObject({ path: '/abs/in', mode: 'mirror', delete: true, file_mode: 0o640 });
    expect(config.watch[2]).toMatchObject({ path: '/etc/stevedore/in2', after_push: '/etc/done' });
  });

  it('a partial retry override keeps the rest of defaults.retry (it does not refill 5 / 500ms / 30s)', () => {
    const config = parse(
      minimal(
        'defaults: { retry: { attempts: 3, initial_delay: 10ms, max_delay: 50ms }, push_timeout: 1s }',
        'http:',
        '  listen: 127.0.0.1:1',
        '  routes:',
        '    - { name: a, path: /a, target: box, dest: /d, retry: { attempts: 2 } }',
        '    - { name: b, path: /b, target: box, dest: /d, retry: { max_delay: 1s }, push_timeout: 2s, owner: { uid: 1, gid: 2 } }',
        '    - { name: c, path: /c, target: box, dest: /d }',
      ),
    );
    const [a, b, c] = config.http?.routes ?? [];
    expect(a?.retry).toEqual({ attempts: 2 });
    expect(fileOptionsFor(config.defaults, a).retry).toEqual({ attempts: 2, initialDelay: 10, maxDelay: 50 });
    expect(fileOptionsFor(config.defaults, b)).toEqual({
      mode: 0o644,
      dirMode: 0o755,
      owner: { uid: 1, gid: 2 },
      retry: { attempts: 3, initialDelay: 10, maxDelay: 1000 },
      pushTimeout: 2000,
    });
    expect(fileOptionsFor(config.defaults, c)).toEqual({ mode: 0o644, dirMode: 0o755, retry: { attempts: 3, initialDelay: 10, maxDelay: 50 }, pushTimeout: 1000 });
  });

  it('resolves relative host paths against the config file, wherever the process runs', () => {
    const config = parseConfig(
      yaml('version: 1', 'state_dir: state', 'targets:', '  a: { runtime: local, root: ./a }', '  b: { runtime: local, root: /abs/b }', '  c: { runtime: incus, container: "remote:c1" }'),
      'conf/x.yaml',
      {},
    );
    const base = path.resolve('conf');
    expect(config.file).toBe(path.join(base, 'x.yaml'));
    expect(config.state_dir).toBe(path.join(base, 'state'));
    expect(config.targets.a).toEqual({ runtime: 'local', root: path.join(base, 'a') });
    expect(config.targets.b).toEqual({ runtime: 'local', root: '/abs/b' });
    expect(config.targets.c).toEqual({ runtime: 'incus', container: 'remote:c1' }); // container names are not paths
  });

  it('accepts sizes as plain byte counts and the other runtimes', () => {
    const config = parse(
      yaml(
        'version: 1',
        'targets:',
        '  i: { runtime: incus, container: web01, project: default }',
        '  l: { runtime: lxd, container: web02 }',
        '  d: { runtime: docker, container: web03 }',
        '  p: { runtime: podman, container: web04 }',
        'queue: { batch_bytes: 4096, shutdown_grace: 1.5s }',
        'log: { level: silent, format: json }',
      ),
    );
    expect(Object.keys(config.targets)).toEqual(['i', 'l', 'd', 'p']);
    expect(config.queue.batch_bytes).toBe(4096);
    expect(config.queue.shutdown_grace).toBe(1500);
  });
});

describe('${VAR} interpolation', () => {
  const withToken = (token: string) =>
    minimal(
      'http:', //                         4
      '  listen: 127.0.0.1:8080', //      5
      '  routes:', //                     6
      '    - name: r', //                 7
      '      path: /r', //                8
      '      target: box', //             9
      '      dest: /d', //                10
      `      token: ${token}`, //         11
    );
  const token = (value: string, env: NodeJS.ProcessEnv = {}) => parse(withToken(value), env).http?.routes[0]?.token;
  // Tokens are visible ASCII: values with spaces or line breaks go through a watch's ignore glob.
  const ignoreGlob = (value: string, env: NodeJS.ProcessEnv = {}) => parse(minimal('watch:', '  - name: w', '    path: /w', '    target: box', '    dest: /d', '    ignore:', `      - ${value}`), env).watch[0]?.ignore[0];

  it('replaces ${VAR} from the environment, anywhere in a string', () => {
    expect(token('${TOKEN}', { TOKEN: 's3cret' })).toBe('s3cret');
    expect(token('pre-${A}-mid-${B}-post', { A: '1', B: '2' })).toBe('pre-1-mid-2-post');
    expect(token('"${TOKEN}"', { TOKEN: 'quoted' })).toBe('quoted');
  });

  it('uses the default of ${VAR:-default} when VAR is unset or empty', () => {
    expect(token('${TOKEN:-fallback}')).toBe('fallback');
    expect(token('${TOKEN:-fallback}', { TOKEN: '' })).toBe('fallback');
    expect(token('${TOKEN:-fallback}', { TOKEN: 'set' })).toBe('set');
    expect(token('x${EMPTY:-}y')).toBe('xy');
    expect(ignoreGlob('"${GLOB:-with spaces: and colons}"')).toBe('with spaces: and colons');
  });

  it('an unquoted reference takes the type its value would have unquoted', () => {
    const text = minimal('queue:', '  capacity: ${CAP:-10}', '  per_target: ${PT}', 'http:', '  listen: 127.0.0.1:${PORT:-8080}', '  allow_anonymous: ${ANON:-true}');
    const config = parse(text, { PT: '3' });
    expect(config.queue).toMatchObject({ capacity: 10, per_target: 3 });
    expect(config.http).toMatchObject({ listen: '127.0.0.1:8080', allow_anonymous: true });
    expect(token('${PIN}', { PIN: '123456' })).toBe('123456');
    // A number only when it reads back the same: a token never changes on its way in.
    for (const pin of ['0123', '12345678901234567890', '1e3', '0x1F']) expect(token('${PIN}', { PIN: pin })).toBe(pin);
    expect(token('"${TOKEN}"', { TOKEN: 'true' })).toBe('true');
  });

  it('$${ is a literal ${', () => {
    expect(token('$${TOKEN}', { TOKEN: 'no' })).toBe('${TOKEN}');
    expect(token('a$${b}c')).toBe('a${b}c');
    expect(token('$${NOT_SET:-x}')).toBe('${NOT_SET:-x}');
  });

  it('a value cannot inject YAML structure, and keys are not interpolated', () => {
    expect(ignoreGlob('${GLOB}', { GLOB: 'a: b\nc: [d]' })).toBe('a: b\nc: [d]');
    const text = yaml('version: 1', 'targets:', '  ${NAME}: { runtime: local, root: /r }');
    expect(problems(text, { NAME: 'box' })).toEqual(['x.yaml:3:3: targets.${NAME}: expected a name of letters, digits, "_", "-" or "." (at most 63)']);
  });

  it('an unset variable without a default is an error at its exact position', () => {
    expect(problems(withToken('${WEB_TOKEN}'))).toEqual([
      'x.yaml:11:14: http.routes.0.token: environment variable WEB_TOKEN is not set (use ${WEB_TOKEN:-default} for a default)',
    ]);
    // set but empty counts as unset
    expect(problems(withToken('${WEB_TOKEN}'), { WEB_TOKEN: '' })).toEqual([
      'x.yaml:11:14: http.routes.0.token: environment variable WEB_TOKEN is not set (use ${WEB_TOKEN:-default} for a default)',
    ]);
    expect(problems(yaml('version: 1', 'targets:', '  box: { runtime: local, root: "/srv/${ROOT}" }'))).toEqual([
      'x.yaml:3:32: targets.box.root: environment variable ROOT is not set (use ${ROOT:-default} for a default)',
    ]);
  });

  it('every unset variable is reported, inside lists too', () => {
    const text = yaml(
      'version: 1',
      'targets:',
      '  box: { runtime: local, root: "${A}" }',
      'watch:',
      '  - name: w',
      '    path: /w',
      '    target: box',
      '    dest: /d',
      '    ignore: ["*.tmp", "${B}${C}"]',
    );
    expect(problems(text)).toEqual([
      'x.yaml:3:32: targets.box.root: environment variable A is not set (use ${A:-default} for a default)',
      'x.yaml:9:23: watch.0.ignore.1: environment variable B is not set (use ${B:-default} for a default)',
      'x.yaml:9:23: watch.0.ignore.1: environment variable C is not set (use ${C:-default} for a default)',
    ]);
  });

  it('a malformed reference is an error, not left in the value', () => {
    expect(problems(withToken('${WEB-TOKEN}'), { WEB: 'x' })).toEqual([
      'x.yaml:11:14: http.routes.0.token: malformed reference "${WEB-TOKEN}": expected ${NAME} or ${NAME:-default} (write $${ for a literal ${)',
    ]);
    expect(problems(withToken('${TOKEN:default}'))[0]).toMatch(/^x\.yaml:11:14: http\.routes\.0\.token: malformed reference "\$\{TOKEN:default\}"/);
    expect(problems(withToken('abc${TOKEN'))[0]).toMatch(/^x\.yaml:11:14: http\.routes\.0\.token: malformed reference "\$\{TOKEN"/);
    // nested references are not supported: one problem, not two
    expect(problems(withToken('"${A:-${B}}"'))).toEqual([
      'x.yaml:11:14: http.routes.0.token: malformed reference "${A:-${B}": expected ${NAME} or ${NAME:-default} (write $${ for a literal ${)',
    ]);
  });
});

describe('schema problems, each at its own line:col', () => {
  it('unknown keys at every depth point at the key', () => {
    const text = yaml(
      'version: 1', //                                                    1
      'colour: blue', //                                                  2
      'log: { level: info, fromat: json }', //                            3
      'targets:', //                                                      4
      '  box: { runtime: local, root: /r, user: root }', //               5
      'defaults:', //                                                     6
      '  retry: { attempts: 2, backoff: 2x }', //                         7
      'http:', //                                                         8
      '  listen: 127.0.0.1:1', //                                         9
      '  routes:', //                                                     10
      '    - name: r', //                                                 11
      '      path: /r', //                                                12
      '      target: box', //                                             13
      '      dest: /d', //                                                14
      '      methods: [PUT]', //                                          15
      'watch:', //                                                        16
      '  - { name: w, path: /w, target: box, dest: /d, recursive: true }', // 17
    );
    expect(problems(text)).toEqual([
      'x.yaml:2:1: colour: unknown key',
      'x.yaml:3:21: log.fromat: unknown key',
      'x.yaml:5:36: targets.box.user: unknown key',
      'x.yaml:7:25: defaults.retry.backoff: unknown key',
      'x.yaml:15:7: http.routes.0.methods: unknown key',
      'x.yaml:17:49: watch.0.recursive: unknown key',
    ]);
  });

  it('several unknown keys in one map are each reported', () => {
    expect(problems(minimal('queue: { size: 1, workers: 2 }'))).toEqual(['x.yaml:4:10: queue.size: unknown key', 'x.yaml:4:19: queue.workers: unknown key']);
  });

  it('wrong types point at the value', () => {
    const text = yaml(
      'version: "1"', //                                          1
      'state_dir: 5', //                                          2
      'targets:', //                                              3
      '  box: { runtime: local, root: 7 }', //                   4
      'queue: { capacity: 0, concurrency: 1.5, per_target: x }', // 5
      'http:', //                                                 6
      '  listen: 8080', //                                        7
      '  allow_anonymous: "yes"', //                              8
      '  routes: { name: r }', //                                 9
      'watch:', //                                                10
      '  - { name: "bad name", path: /w, target: box, dest: d, ignore: "*.tmp", mode: copy }', // 11
    );
    expect(problems(text)).toEqual([
      'x.yaml:1:10: version: expected version: 1',
      'x.yaml:2:12: state_dir: Invalid input: expected string, received number',
      'x.yaml:4:32: targets.box.root: Invalid input: expected string, received number',
      'x.yaml:5:20: queue.capacity: Too small: expected number to be >=1',
      'x.yaml:5:36: queue.concurrency: Invalid input: expected int, received number',
      'x.yaml:5:53: queue.per_target: Invalid input: expected number, received string',
      'x.yaml:7:11: http.listen: Invalid input: expected string, received number',
      'x.yaml:8:20: http.allow_anonymous: Invalid input: expected boolean, received string',
      'x.yaml:9:3: http.routes: Invalid input: expected array, received object',
      'x.yaml:11:13: watch.0.name: expected a name of letters, digits, "_", "-" or "." (at most 63)',
      'x.yaml:11:54: watch.0.dest: expected an absolute path like /var/www/html (no trailing slash, no empty segments)',
      'x.yaml:11:65: watch.0.ignore: Invalid input: expected array, received string',
      'x.yaml:11:80: watch.0.mode: Invalid option: expected one of "drop"|"mirror"',
    ]);
  });

  it('refuses an http.listen that no listener could bind: a port over 65535, an address that is not one', () => {
    const config = (value: string) => minimal('http:', `  listen: "${value}"`, '  allow_anonymous: true');
    const listen = (value: string) => problems(config(value));
    expect(listen('127.0.0.1:99999')).toEqual(['x.yaml:5:11: http.listen: port 99999 is over 65535 (expected host:port, like 127.0.0.1:8080)']);
    expect(listen('127.0.0.1:65536')).toEqual(['x.yaml:5:11: http.listen: port 65536 is over 65535 (expected host:port, like 127.0.0.1:8080)']);
    expect(listen('999.1.1.1:80')).toEqual(['x.yaml:5:11: http.listen: 999.1.1.1 is not an IPv4 address (expected host:port, like 127.0.0.1:8080)']);
    expect(listen('[1::2::3]:80')).toEqual(['x.yaml:5:11: http.listen: 1::2::3 is not an IPv6 address (expected host:port, like 127.0.0.1:8080)']);
    for (const good of ['127.0.0.1:65535', '127.0.0.1:0', '[::1]:8080', 'localhost:8080', 'files.internal:443']) {
      expect(parseConfig(config(good), 'x.yaml', {}).http?.listen).toBe(good);
    }
  });

  it('missing required keys are reported at their parent', () => {
    const text = yaml(
      'version: 1', //                              1
      'targets:', //                                2
      '  box: { runtime: local }', //               3
      '  web: { runtime: incus }', //               4
      'http:', //                                   5
      '  routes:', //                               6
      '    - { name: r, path: /r, target: box }', // 7
    );
    expect(problems(text)).toEqual([
      'x.yaml:3:3: targets.box.root: required', // at the key of the map that lacks it
      'x.yaml:4:3: targets.web.container: expected container (one container) or select (a fleet: labels and/or a name glob)',
      'x.yaml:5:1: http.listen: required',
      'x.yaml:7:7: http.routes.0.dest: required',
    ]);
    expect(problems('')).toEqual(['x.yaml:1:1: version: expected version: 1', 'x.yaml:1:1: targets: required']);
    expect(problems(yaml('version: 1', 'targets: {}'))).toEqual(['x.yaml:2:1: targets: expected at least one target']);
  });

  it('a container target with remote: names its container without a remote', () => {
    const text = yaml('version: 1', 'targets:', '  c: { runtime: incus, remote: edge1, container: "edge1:c1" }', '  d: { runtime: lxd, remote: edge1, container: c1 }');
    expect(problems(text)).toEqual(['x.yaml:3:50: targets.c.container: the remote is given by remote: "edge1"; name the container without one']);
  });

  it('a document that is not a map is one problem', () => {
    expect(problems('just a string\n')).toEqual(['x.yaml:1:1: Invalid input: expected object, received string']);
    expect(problems('- a\n- b\n')).toEqual(['x.yaml:1:1: Invalid input: expected object, received array']);
  });

  it('a duration longer than a timer can hold is refused', () => {
    const text = yaml('version: 1', 'targets:', '  box: { runtime: local, root: /r }', 'defaults:', '  push_timeout: 600h');
    expect(problems(text)).toEqual(['x.yaml:5:17: defaults.push_timeout: expected at most 596h (timers cannot hold longer)']);
  });

  it('bad durations, sizes and modes', () => {
    const text = yaml(
      'version: 1', //                                                                      1
      'targets:', //                                                                        2
      '  box: { runtime: local, root: /r }', //                                             3
      'defaults:', //                                                                       4
      '  mode: 0644', //                                                                    5
      '  dir_mode: "0999"', //                                                              6
      '  push_timeout: 5 min', //                                                           7
      '  retry: { initial_delay: 100, max_delay: -1s }', //                                  8
      'queue: { batch_bytes: 64 megs, shutdown_grace: 1d }', //                              9
      'http:', //                                                                           10
      '  listen: 127.0.0.1:1', //                                                           11
      '  max_body: 2gb', //                                                                 12
      '  min_free: -5', //                                                                  13
      '  idle_timeout: 1m30s', //                                                           14
      '  routes:', //                                                                       15
      '    - { name: r, path: /r, target: box, dest: /d, mode: "rw-r--r--", dir_mode: "0o755" }', // 16
    );
    const size = 'expected a size like "512KiB" or "2GiB", or a whole number of bytes';
    const duration = 'expected a duration like "250ms", "5s", "2m" or "1h"';
    const mode = 'expected an octal mode in quotes, like "0644"';
    expect(problems(text)).toEqual([
      `x.yaml:5:9: defaults.mode: ${mode}`, // an unquoted 0644 is the number 644
      `x.yaml:6:13: defaults.dir_mode: ${mode}`,
      `x.yaml:7:17: defaults.push_timeout: ${duration}`,
      `x.yaml:8:27: defaults.retry.initial_delay: Invalid input: expected string, received number`,
      `x.yaml:8:43: defaults.retry.max_delay: ${duration}`,
      `x.yaml:9:23: queue.batch_bytes: ${size}`,
      `x.yaml:9:48: queue.shutdown_grace: ${duration}`,
      `x.yaml:12:13: http.max_body: ${size}`,
      `x.yaml:13:13: http.min_free: ${size}`,
      `x.yaml:14:17: http.idle_timeout: ${duration}`,
      `x.yaml:16:57: http.routes.0.mode: ${mode}`,
      `x.yaml:16:80: http.routes.0.dir_mode: ${mode}`,
    ]);
  });

  it('a bad target name is reported with the name rule, not "Invalid key in record"', () => {
    expect(problems(yaml('version: 1', 'targets:', '  "web server": { runtime: local, root: /r }'))).toEqual([
      'x.yaml:3:3: targets.web server: expected a name of letters, digits, "_", "-" or "." (at most 63)',
    ]);
  });

  it('kubectl (and any other runtime) says which runtimes exist and that kubectl is planned', () => {
    const text = yaml('version: 1', 'targets:', '  k8s: { runtime: kubectl, container: pod/web }', '  vm: { runtime: qemu, container: x }');
    expect(problems(text)).toEqual([
      'x.yaml:3:19: targets.k8s.runtime: expected runtime to be one of incus, lxd, docker, podman, local (kubectl is planned)',
      'x.yaml:4:18: targets.vm.runtime: expected runtime to be one of incus, lxd, docker, podman, local (kubectl is planned)',
    ]);
  });
});

// Container paths, route paths and tokens must already be normal (issue 10, item 12):
// each row is one value, written as a JSON string (valid YAML), in the one line that
// names it; the problem must be that line's, at the value.
describe('container paths, route paths and tokens are normal', () => {
  const at = (line: string, value: string) => line.indexOf(JSON.stringify(value)) + 1;
  const places: [string, string, (value: string) => string][] = [
    ['http.routes.0.dest', 'route dest', (v) => `    - { name: r, path: /r, target: box, dest: ${JSON.stringify(v)} }`],
    ['http.legacy.0.path_prefix', 'legacy path_prefix', (v) => `    - { target: box, path_prefix: ${JSON.stringify(v)} }`],
    ['watch.0.dest', 'watch dest', (v) => `  - { name: w, path: /w, target: box, dest: ${JSON.stringify(v)} }`],
  ];
  // Line 7: the route, the legacy rule, or the watch.
  const configWith = (key: string, line: string) =>
    key === 'watch.0.dest' ? minimal('http:', '  listen: 127.0.0.1:1', 'watch:', line) : minimal('http:', '  listen: 127.0.0.1:1', key.startsWith('http.routes') ? '  routes:' : '  legacy:', line);

  const refusedPaths: [string, string, string][] = [
    ['a .. segment', '/srv/../etc', 'path segment 2 is "..": parent references are not allowed'],
    ['a trailing ..', '/srv/www/..', 'path segment 3 is "..": parent references are not allowed'],
    ['a . segment', '/srv/./www', 'path segment 2 is ".": current-directory references are not allowed'],
    ['a control character', '/srv/a\u0001b', 'path segment 2 contains control character U+0001'],
    ['DEL', '/srv/a\u007fb', 'path segment 2 contains control character U+007F'],
    ['a tab', '/srv/a\tb', 'path segment 2 contains control character U+0009'],
    ['a right-to-left override', '/srv/evil\u202etxt', 'path segment 2 contains bidi control U+202E'],
    ['a zero-width space', '/srv/a\u200bb', 'path segment 2 contains invisible format character U+200B'],
    ['a decomposed é', '/srv/cafe\u0301', 'path segment 2 is not in Unicode NFC (composed) form: normalize it to NFC first'],
    ['a segment of one space', '/srv/ /www', 'path segment 2 has nothing visible: only whitespace or invisible characters'],
    ['a division slash', '/srv/a\u2215b', 'path segment 2 contains slash look-alike U+2215'],
    ['fullwidth dots', '/srv/\uff0e\uff0e', 'path segment 2 normalizes to ".."'],
    ['a 256-byte name', `/srv/${'n'.repeat(256)}`, 'path segment 2 is 256 bytes, over the 255-byte name limit'],
  ];
  const shapeRows: [string, string][] = [
    ['relative', 'srv/www'],
    ['a trailing slash', '/srv/www/'],
    ['an empty segment', '/srv//www'],
    ['a backslash', '/srv\\www'],
  ];

  const pathRows = places.flatMap(([key, label, line]) => refusedPaths.map(([what, value, message]) => [`${label} with ${what}`, key, line(value), value, message] as const));
  it.each(pathRows)('%s is refused at FILE:LINE:COL', (_label, key, line, value, message) => {
    expect(problems(configWith(key, line))).toEqual([`x.yaml:7:${at(line, value)}: ${key}: expected a normalized absolute path like /var/www/html: ${message}`]);
  });

  const shapes = places.flatMap(([key, label, line]) => shapeRows.map(([what, value]) => [`${label}, ${what}`, key, line(value), value] as const));
  it.each(shapes)('%s keeps the shape message, alone', (_label, key, line, value) => {
    expect(problems(configWith(key, line))).toEqual([`x.yaml:7:${at(line, value)}: ${key}: expected an absolute path like /var/www/html (no trailing slash, no empty segments)`]);
  });

  it('accepts names that only look odd: "..data", ".well-known", composed UTF-8, "/"', () => {
    for (const value of ['/srv/..data', '/srv/.well-known/x', '/srv/café', '/srv/a b', '/']) {
      const config = parse(configWith('http.routes.0.dest', places[0]?.[2](value) ?? ''));
      expect(config.http?.routes[0]?.dest).toBe(value);
    }
  });

  const route = (routePath: string) => `    - { name: r, path: ${JSON.stringify(routePath)}, target: box, dest: /d }`;
  it.each([['/drop/../web'], ['/drop/./web'], ['/..'], ['/.'], ['/drop/..']])('a route path %s is refused', (routePath) => {
    const line = route(routePath);
    expect(problems(configWith('http.routes.0.dest', line))).toEqual([`x.yaml:7:${at(line, routePath)}: http.routes.0.path: expected a URL path like /drop/web: "." and ".." segments are not allowed`]);
  });

  it('a route path with dots inside its names is fine', () => {
    for (const routePath of ['/drop/..web', '/drop/.well-known', '/v1.2/x...']) {
      expect(parse(configWith('http.routes.0.dest', route(routePath))).http?.routes[0]?.path).toBe(routePath);
    }
  });

  const TOKEN_MESSAGE = 'expected a token of visible ASCII characters (no spaces, control or non-ASCII characters; RFC 6750)';
  const tokenLine = (token: string) => `    - { name: r, path: /r, target: box, dest: /d, token: ${JSON.stringify(token)} }`;
  it.each([
    ['a space', 'secret token'],
    ['a leading space', ' secret'],
    ['a trailing newline (as from a file read into an environment variable)', 'secret\n'],
    ['a tab', 'sec\tret'],
    ['a NUL', 'sec\u0000ret'],
    ['DEL', 'secret\u007f'],
    ['a non-ASCII letter', 'sécret'],
    ['a no-break space', 'sec\u00a0ret'],
    ['empty', ''],
  ])('a token with %s is refused, without repeating it', (_label, token) => {
    const line = tokenLine(token);
    const [problem] = problems(configWith('http.routes.0.dest', line));
    expect(problem).toBe(`x.yaml:7:${at(line, token)}: http.routes.0.token: ${TOKEN_MESSAGE}`);
  });

  it('the same rule holds for a legacy token, http.admin_token, and a token from the environment', () => {
    const text = minimal('http:', '  listen: 127.0.0.1:1', '  admin_token: "${ADMIN}"', '  legacy:', '    - { target: box, path_prefix: /srv, token: "a b" }');
    expect(problems(text, { ADMIN: 'from env\n' })).toEqual([`x.yaml:6:16: http.admin_token: ${TOKEN_MESSAGE}`, `x.yaml:8:48: http.legacy.0.token: ${TOKEN_MESSAGE}`]);
  });

  it('accepts every visible ASCII character, and an all-digit token', () => {
    const visible = Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i)).join('');
    expect(parse(configWith('http.routes.0.dest', tokenLine(visible))).http?.routes[0]?.token).toBe(visible);
    expect(parse(configWith('http.routes.0.dest', '    - { name: r, path: /r, target: box, dest: /d, token: 123456 }')).http?.routes[0]?.token).toBe('123456');
  });
});

// Directories the agent reads and writes may not nest (issue 10, item 5; SPEC §9).
describe('host directories that overlap', () => {
  /** state_dir on line 2, the box target's root on line 4, then `watch` lines from line 6. */
  const dirs = (stateDir: string, root: string, ...watch: string[]) =>
    yaml('version: 1', `state_dir: ${stateDir}`, 'targets:', `  box: { runtime: local, root: ${root} }`, '  web: { runtime: incus, container: /data/in }', ...(watch.length ? ['watch:', ...watch] : []));
  const watchAt = (dir: string, more = '') => `  - { name: w, path: ${dir}, target: box, dest: /d${more} }`;
  const PUSH_OWN = 'the agent would push, and in drop mode delete, its own spool and journal';
  const OWN_FILES = "the target would write among the agent's own files";
  const AGAIN = 'each landed file would be seen by the watch and pushed again';
  const MOVED = "pushed files would be moved among the agent's own files";

  const refused: [string, string, string[]][] = [
    ['a watch that contains state_dir', dirs('/data/in/state', '/srv/box', watchAt('/data/in')), [`x.yaml:7:22: watch.0.path: /data/in contains state_dir /data/in/state: ${PUSH_OWN}`]],
    ['a watch inside state_dir', dirs('/data', '/srv/box', watchAt('/data/in')), [`x.yaml:7:22: watch.0.path: /data/in lies inside state_dir /data: ${PUSH_OWN}`]],
    ['a watch that is state_dir', dirs('/data/in', '/srv/box', watchAt('/data/in')), [`x.yaml:7:22: watch.0.path: /data/in is state_dir /data/in: ${PUSH_OWN}`]],
    ['a watch spelled with a trailing slash and ..', dirs('/data/x/../in/state', '/srv/box', watchAt('/data/in/')), [`x.yaml:7:22: watch.0.path: /data/in contains state_dir /data/in/state: ${PUSH_OWN}`]],
    ['state_dir named "..data" inside a watch (a name, not a parent reference)', dirs('/data/in/..data', '/srv/box', watchAt('/data/in')), [`x.yaml:7:22: watch.0.path: /data/in contains state_dir /data/in/..data: ${PUSH_OWN}`]],
    ['a local root that contains state_dir', dirs('/srv/box/state', '/srv/box'), [`x.yaml:4:32: targets.box.root: /srv/box contains state_dir /srv/box/state: ${OWN_FILES}`]],
    ['a local root inside state_dir', dirs('/var/lib/stevedore', '/var/lib/stevedore/box'), [`x.yaml:4:32: targets.box.root: /var/lib/stevedore/box lies inside state_dir /var/lib/stevedore: ${OWN_FILES}`]],
    ['a local root that contains a watch', dirs('/var/lib/stevedore', '/srv/box', watchAt('/srv/box/in')), [`x.yaml:4:32: targets.box.root: /srv/box contains watch.0.path /srv/box/in: ${AGAIN}`]],
    ['a local root inside a watch', dirs('/var/lib/stevedore', '/data/in/box', watchAt('/data/in')), [`x.yaml:4:32: targets.box.root: /data/in/box lies inside watch.0.path /data/in: ${AGAIN}`]],
    ['after_push inside state_dir', dirs('/var/lib/stevedore', '/srv/box', watchAt('/data/in', ', after_push: /var/lib/stevedore/done')), [`x.yaml:7:67: watch.0.after_push: /var/lib/stevedore/done lies inside state_dir /var/lib/stevedore: ${MOVED}`]],
    ['after_push that contains state_dir', dirs('/var/lib/stevedore', '/srv/box', watchAt('/data/in', ', after_push: /var')), [`x.yaml:7:67: watch.0.after_push: /var contains state_dir /var/lib/stevedore: ${MOVED}`]],
    [
      'every overlap at once, in order',
      dirs('/data/state', '/data', watchAt('/data'), '  - { name: v, path: /data/state/v, target: box, dest: /d }'),
      [
        `x.yaml:4:32: targets.box.root: /data contains state_dir /data/state: ${OWN_FILES}`,
        `x.yaml:4:32: targets.box.root: /data is watch.0.path /data: ${AGAIN}`,
        `x.yaml:4:32: targets.box.root: /data contains watch.1.path /data/state/v: ${AGAIN}`,
        `x.yaml:7:22: watch.0.path: /data contains state_dir /data/state: ${PUSH_OWN}`,
        `x.yaml:8:22: watch.1.path: /data/state/v lies inside state_dir /data/state: ${PUSH_OWN}`,
      ],
    ],
  ];
  it.each(refused)('%s is refused, naming both keys', (_label, text, expected) => {
    expect(problems(text)).toEqual(expected);
  });

  it('the default state_dir lies inside a watch of the config file\'s own directory', () => {
    const text = minimal('watch:', '  - { name: w, path: ., target: box, dest: /d }');
    expect(problems(text)).toEqual([`x.yaml:5:22: watch.0.path: ${path.resolve('.')} contains state_dir ${path.resolve('var/stevedore')}: ${PUSH_OWN}`]);
  });

  it.each([
    ['siblings', dirs('/data/state', '/data/box', watchAt('/data/in', ', after_push: /data/done'))],
    ['a sibling named "..in" beside the watch', dirs('/data/..in', '/data/box', watchAt('/data/in'))],
    ['a sibling that only starts like the watch', dirs('/data/in-state', '/data/in.box', watchAt('/data/in', ', after_push: /data/in..done'))],
    ['a container target (its container is not a host path)', dirs('/var/lib/stevedore', '/srv/box', watchAt('/data/in'))],
  ])('%s are fine', (_label, text) => {
    expect(parse(text).watch.length).toBeGreaterThan(0);
  });

  describe('through symlinks (loadConfig reads the host)', () => {
    /** A temp dir holding real/ (with real/in), a symlink link → real, and the config file. */
    async function host() {
      const base = await tempDir();
      await mkdir(path.join(base, 'real/in'), { recursive: true });
      await mkdir(path.join(base, 'elsewhere'));
      await symlink(path.join(base, 'real'), path.join(base, 'link'));
      const file = path.join(base, 'stevedore.yaml');
      const load = async (stateDir: string, root: string, watchDir: string, more = '') => {
        await writeFile(file, dirs(stateDir, root, watchAt(watchDir, more)));
        return loadConfig(file, {}).then(() => [], (error: unknown) => (error as ConfigError).message.split('\n'));
      };
      return { base, file, load };
    }

    it('a watch whose symlink leads to the directory holding state_dir', async () => {
      const { base, file, load } = await host();
      const [watchDir, stateDir, real] = [path.join(base, 'link'), path.join(base, 'real/state'), path.join(base, 'real')];
      expect(await load(stateDir, path.join(base, 'box'), watchDir)).toEqual([
        `${file}:7:${watchAt(watchDir).indexOf(watchDir) + 1}: watch.0.path: ${watchDir} contains state_dir ${stateDir} (through symlinks: ${real} and ${stateDir}): ${PUSH_OWN}`,
      ]);
    });

    it('a state_dir not made yet, under a symlinked parent that leads into the watch', async () => {
      const { base, file, load } = await host();
      const [watchDir, stateDir] = [path.join(base, 'real/in'), path.join(base, 'link/in/state')];
      expect(await load(stateDir, path.join(base, 'box'), watchDir)).toEqual([
        `${file}:7:${watchAt(watchDir).indexOf(watchDir) + 1}: watch.0.path: ${watchDir} contains state_dir ${stateDir} (through symlinks: ${watchDir} and ${path.join(base, 'real/in/state')}): ${PUSH_OWN}`,
      ]);
    });

    it('a local root that is the watch under another name', async () => {
      const { base, file, load } = await host();
      const [root, watchDir] = [path.join(base, 'link/in'), path.join(base, 'real/in')];
      expect(await load(path.join(base, 'state'), root, watchDir)).toEqual([
        `${file}:4:32: targets.box.root: ${root} is watch.0.path ${watchDir} (through symlinks: ${watchDir} and ${watchDir}): ${AGAIN}`,
      ]);
    });

    it('an after_push whose symlinked parent leads into the watch', async () => {
      const { base, file, load } = await host();
      const [watchDir, done] = [path.join(base, 'real/in'), path.join(base, 'link/in/done')];
      const line = watchAt(watchDir, `, after_push: ${done}`);
      expect(await load(path.join(base, 'state'), path.join(base, 'box'), watchDir, `, after_push: ${done}`)).toEqual([
        `${file}:7:${line.indexOf(done) + 1}: watch.0.after_push: must not be inside, or contain, the watched directory ${watchDir} (through symlinks: ${path.join(watchDir, 'done')} and ${watchDir})`,
      ]);
    });

    it('a state_dir, local root or after_push that is a file, or lies under one (they are made at start when missing)', async () => {
      const { base, file, load } = await host();
      const [state, box, done] = ['state', 'box', 'done'].map((name) => path.join(base, `${name}.txt`)) as [string, string, string];
      for (const plain of [state, box, done]) await writeFile(plain, 'not a directory');
      const [watchDir, root] = [path.join(base, 'real/in'), path.join(box, 'root')];
      const line = watchAt(watchDir, `, after_push: ${done}`);
      expect(await load(state, root, watchDir, `, after_push: ${done}`)).toEqual([
        `${file}:2:12: state_dir: ${state} is not a directory`,
        `${file}:4:32: targets.box.root: ${root}: one of its parents is not a directory`,
        `${file}:7:${line.indexOf(done) + 1}: watch.0.after_push: ${done} is not a directory`,
      ]);
      expect(await load(path.join(base, 'state'), path.join(base, 'box'), watchDir, `, after_push: ${path.join(base, 'done')}`)).toEqual([]);
      const watchUnder = path.join(state, 'in'); // a watch must exist: under a file it cannot
      expect(await load(path.join(base, 'state'), path.join(base, 'box'), watchUnder)).toEqual([`${file}:7:${watchAt(watchUnder).indexOf(watchUnder) + 1}: watch.0.path: ${watchUnder}: one of its parents is not a directory`]);
    });

    it('a symlink that leads elsewhere is fine', async () => {
      const { base, load } = await host();
      await symlink(path.join(base, 'elsewhere'), path.join(base, 'real/in/out'));
      expect(await load(path.join(base, 'real/in/out/state'), path.join(base, 'box'), path.join(base, 'real/in'))).toHaveLength(1); // spelled inside: refused
      expect(await load(path.join(base, 'link2/state'), path.join(base, 'box'), path.join(base, 'real/in'))).toEqual([]);
    });
  });
});

describe('YAML-level problems', () => {
  it('syntax errors carry their positions', () => {
    expect(problems(yaml('version: 1', 'targets: [box', 'http: {'))).toEqual([
      'x.yaml:3:1: Flow sequence in block collection must be sufficiently indented and end with a ]',
      'x.yaml:4:1: Flow map in block collection must be sufficiently indented and end with a }',
    ]);
    expect(problems(yaml('version: 1', '\ttargets: {}'))).toEqual(['x.yaml:2:1: Tabs are not allowed as indentation']);
    const lines = problems(yaml('version: 1', 'targets:', '  box: { runtime: local, root: "/r }', 'log: x'));
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(line).toMatch(/^x\.yaml:\d+:\d+: /);
  });

  it('duplicate keys are errors at the second key, at any depth', () => {
    expect(problems(yaml('version: 1', 'version: 1', 'targets:', '  box: { runtime: local, root: /r }'))).toEqual(['x.yaml:2:1: Map keys must be unique']);
    expect(problems(yaml('version: 1', 'targets:', '  box: { runtime: local, root: /r, root: /s }'))).toEqual(['x.yaml:3:36: Map keys must be unique']);
    expect(
      problems(yaml('version: 1', 'targets:', '  box: { runtime: local, root: /r }', '  box: { runtime: local, root: /s }')),
    ).toEqual(['x.yaml:4:3: Map keys must be unique']);
  });

  it('more than one document is an error', () => {
    expect(problems(yaml('version: 1', '---', 'version: 1'))).toEqual(['x.yaml:2:1: Source contains multiple documents; please use YAML.parseAllDocuments()']);
  });

  it('anchors and aliases work; an alias without its anchor is an error, not a crash', () => {
    const config = parse(
      minimal(
        'http:',
        '  listen: 127.0.0.1:1',
        '  routes:',
        '    - { name: a, path: /a, target: box, dest: /d, retry: &fast { attempts: 9 } }',
        '    - { name: b, path: /b, target: box, dest: /d, retry: *fast }',
      ),
    );
    expect(config.http?.routes[1]?.retry).toEqual({ attempts: 9 });
    expect(problems(minimal('log: *nowhere'))).toEqual(['x.yaml:4:6: alias *nowhere has no anchor &nowhere before it']);
    expect(problems(minimal('log: *later', 'x: &later { level: info }'))).toEqual(['x.yaml:4:6: alias *later has no anchor &later before it']);
  });

  it('an alias bomb is an error, not a crash', () => {
    const text = yaml(
      'version: 1',
      'a: &a [x, x, x, x, x, x, x, x, x, x]',
      'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]',
      'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]',
      'd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]',
    );
    expect(problems(text)).toEqual(['x.yaml:1:1: Excessive alias count indicates a resource exhaustion attack']);
  });

  it('keys that are not plain names are errors (not stringified with a warning)', () => {
    const warn = vi.spyOn(process, 'emitWarning');
    expect(problems(minimal('? [a, b]', ': 1'))).toEqual(['x.yaml:4:3: keys must be plain names, not collections or aliases']);
    expect(problems(minimal('log: { { level: x }: 1 }'))).toEqual(['x.yaml:4:8: log: keys must be plain names, not collections or aliases']);
    expect(problems(minimal(': 1'))).toEqual(['x.yaml:4:1: empty key']);
    expect(warn).not.toHaveBeenCalled();
  });

  it('__proto__ is never a key (it would vanish from a record instead of being reported)', () => {
    expect(problems(minimal('__proto__: { x: 1 }'))).toEqual(['x.yaml:4:1: __proto__: not allowed as a key']);
    expect(problems(yaml('version: 1', 'targets:', '  box: { runtime: local, root: /r }', '  __proto__: { runtime: local, root: /s }'))).toEqual([
      'x.yaml:4:3: targets.__proto__: not allowed as a key',
    ]);
  });
});

describe('cross-references', () => {
  const withHttp = (...lines: string[]) => minimal('http:', ...lines); // http: is line 4

  it('a route, legacy rule or watch naming an unknown target', () => {
    const text = yaml(
      'version: 1', //                                                   1
      'targets:', //                                                     2
      '  box: { runtime: local, root: /r }', //                          3
      '  web: { runtime: incus, container: web01 }', //                  4
      'http:', //                                                        5
      '  listen: 127.0.0.1:8080', //                                     6
      '  routes:', //                                                    7
      '    - { name: r, path: /r, target: nope, dest: /d }', //          8
      '  legacy:', //                                                    9
      '    - { target: gone, path_prefix: /srv }', //                    10
      'watch:', //                                                       11
      '  - { name: w, path: /w, target: missing, dest: /d }', //         12
    );
    expect(problems(text)).toEqual([
      'x.yaml:8:36: http.routes.0.target: unknown target "nope" (targets: box, web)',
      'x.yaml:10:17: http.legacy.0.target: unknown target "gone" (targets: box, web)',
      'x.yaml:12:34: watch.0.target: unknown target "missing" (targets: box, web)',
    ]);
  });

  it('exec on a route or watch of a local target (a host directory runs no command); accepted on a container target', () => {
    const text = yaml(
      'version: 1', //                                                                  1
      'targets:', //                                                                    2
      '  box: { runtime: local, root: /r }', //                                         3
      '  web: { runtime: docker, container: web01 }', //                                4
      'http:', //                                                                       5
      '  listen: 127.0.0.1:8080', //                                                    6
      '  routes:', //                                                                   7
      '    - { name: r, path: /r, target: box, dest: /d, exec: [sync] }', //              8
      '    - { name: s, path: /s, target: web, dest: /d, exec: [nginx, -s, reload] }', // 9
      'watch:', //                                                                      10
      '  - { name: w, path: /w, target: box, dest: /d, exec: [sync] }', //                11
    );
    expect(problems(text)).toEqual([
      'x.yaml:8:51: http.routes.0.exec: exec needs a container target; "box" is local',
      'x.yaml:11:49: watch.0.exec: exec needs a container target; "box" is local',
    ]);
  });

  it('an unknown target in a block-style route points at the value', () => {
    const text = yaml(
      'version: 1', //                               1
      'targets: { box: { runtime: local, root: /r } }', // 2
      'http:', //                                    3
      '  listen: 127.0.0.1:8080', //                 4
      '  routes:', //                                5
      '    - name: r', //                            6
      '      target: nope', //                       7
      '      path: /r', //                           8
      '      dest: /d', //                           9
    );
    expect(problems(text)).toEqual(['x.yaml:7:15: http.routes.0.target: unknown target "nope" (targets: box)']);
  });

  it('duplicate route names and paths, duplicate watch names', () => {
    const text = withHttp(
      '  listen: 127.0.0.1:8080', //                          5
      '  routes:', //                                         6
      '    - { name: a, path: /x, target: box, dest: /d }', // 7
      '    - { name: b, path: /x, target: box, dest: /d }', // 8
      '    - { name: a, path: /y, target: box, dest: /d }', // 9
      'watch:', //                                            10
      '  - { name: w, path: /w1, target: box, dest: /d }', // 11
      '  - { name: w, path: /w2, target: box, dest: /d }', // 12
    );
    expect(problems(text)).toEqual([
      'x.yaml:8:24: http.routes.1.path: duplicate path "/x" (also at index 0)',
      'x.yaml:9:15: http.routes.2.name: duplicate name "a" (also at index 0)',
      'x.yaml:12:13: watch.1.name: duplicate name "w" (also at index 0)',
    ]);
  });

  it.each(['/tasks', '/upload', '/healthz', '/readyz', '/metrics', '/status', '/tasks/sub'])('route path %s is reserved', (reserved) => {
    const text = withHttp('  listen: 127.0.0.1:8080', '  routes:', `    - { name: r, path: ${reserved}, target: box, dest: /d }`);
    expect(problems(text)).toEqual([`x.yaml:7:24: http.routes.0.path: ${reserved.split('/').slice(0, 2).join('/')} is reserved for the agent's own API`]);
  });

  it('paths that merely start with a reserved word are fine', () => {
    const text = withHttp('  listen: 127.0.0.1:8080', '  routes:', '    - { name: r, path: /tasksets, target: box, dest: /d }');
    expect(parse(text).http?.routes[0]?.path).toBe('/tasksets');
  });

  it('an anonymous route or legacy rule on a non-loopback listener is refused without allow_anonymous', () => {
    const routes = (listen: string, ...more: string[]) =>
      withHttp(
        `  listen: "${listen}"`, //                                                  5
        ...more,
        '  routes:',
        '    - { name: open, path: /open, target: box, dest: /d }',
        '    - { name: shut, path: /shut, target: box, dest: /d, token: t0ken }',
        '  legacy:',
        '    - { target: box, path_prefix: /srv }',
      );
    const refusal = (listen: string) => `no token, and http.listen ${listen} is not a loopback address: set a token or http.allow_anonymous: true`;
    expect(problems(routes('0.0.0.0:8080'))).toEqual([`x.yaml:7:7: http.routes.0: ${refusal('0.0.0.0:8080')}`, `x.yaml:10:7: http.legacy.0: ${refusal('0.0.0.0:8080')}`]);
    expect(problems(routes('[::]:8080'))).toHaveLength(2);
    expect(problems(routes('192.168.1.10:80'))).toHaveLength(2);
    expect(problems(routes('example.com:80'))).toHaveLength(2);
    // allowed explicitly, or on loopback
    expect(parse(routes('0.0.0.0:8080', '  allow_anonymous: true')).http?.allow_anonymous).toBe(true);
    for (const loopback of ['127.0.0.1:8080', '127.1.2.3:1', 'localhost:8080', '[::1]:8080']) {
      expect(parse(routes(loopback)).http?.listen).toBe(loopback);
    }
  });

  it('delete on a drop watch, after_push on a mirror watch', () => {
    const text = minimal(
      'watch:', //                                                                           4
      '  - { name: a, path: /a, target: box, dest: /d, delete: true }', //                    5
      '  - { name: b, path: /b, target: box, dest: /d, mode: drop, delete: true }', //        6
      '  - { name: c, path: /c, target: box, dest: /d, mode: mirror, after_push: /done }', // 7
      '  - { name: d, path: /d, target: box, dest: /d, mode: mirror, delete: true }', //      8
      '  - { name: e, path: /e, target: box, dest: /d, after_push: /done }', //               9
    );
    expect(problems(text)).toEqual([
      'x.yaml:5:57: watch.0.delete: delete applies to mode: mirror only',
      'x.yaml:6:69: watch.1.delete: delete applies to mode: mirror only',
      'x.yaml:7:75: watch.2.after_push: after_push applies to mode: drop only',
    ]);
  });
});

describe('every problem at once, ordered by position', () => {
  it('schema, cross-reference and interpolation problems are reported together', () => {
    const text = yaml(
      'version: 1', //                                                                  1
      'state_dir: 5', //                                                                2
      'targets:', //                                                                    3
      '  box: { runtime: local, root: /r, extra: 1 }', //                               4
      'http:', //                                                                       5
      '  listen: 0.0.0.0:80', //                                                        6
      '  max_body: lots', //                                                            7
      '  routes:', //                                                                   8
      '    - { name: a, path: /a, target: nope, dest: /d, token: "${T}" }', //          9
      '    - { name: a, path: /status, target: box, dest: rel }', //                    10
      'watch:', //                                                                      11
      '  - { name: w, path: /w, target: box, dest: /d, delete: true, settle: soon }', //  12
    );
    expect(problems(text)).toEqual([
      'x.yaml:2:12: state_dir: Invalid input: expected string, received number',
      'x.yaml:4:36: targets.box.extra: unknown key',
      'x.yaml:7:13: http.max_body: expected a size like "512KiB" or "2GiB", or a whole number of bytes',
      'x.yaml:9:36: http.routes.0.target: unknown target "nope" (targets: box)',
      'x.yaml:9:59: http.routes.0.token: environment variable T is not set (use ${T:-default} for a default)',
      'x.yaml:10:7: http.routes.1: no token, and http.listen 0.0.0.0:80 is not a loopback address: set a token or http.allow_anonymous: true',
      'x.yaml:10:15: http.routes.1.name: duplicate name "a" (also at index 0)',
      'x.yaml:10:24: http.routes.1.path: /status is reserved for the agent\'s own API',
      'x.yaml:10:52: http.routes.1.dest: expected an absolute path like /var/www/html (no trailing slash, no empty segments)',
      'x.yaml:12:57: watch.0.delete: delete applies to mode: mirror only',
      'x.yaml:12:71: watch.0.settle: expected a duration like "250ms", "5s", "2m" or "1h"',
    ]);
  });

  it('cross-references still run when a whole section has the wrong shape', () => {
    const text = yaml(
      'version: 1', //                                                  1
      'targets: [box]', //                                              2
      'queue: 5', //                                                    3
      'http:', //                                                       4
      '  listen: [1]', //                                               5
      '  routes:', //                                                   6
      '    - 42', //                                                    7
      '    - { name: a, path: /a, target: box, dest: /d }', //          8
      '    - { name: a, path: /b, target: box, dest: /d }', //          9
    );
    // no "unknown target" (targets is not a map), no anonymous-route noise (listen is invalid)
    expect(problems(text)).toEqual([
      'x.yaml:2:1: targets: Invalid input: expected record, received array',
      'x.yaml:3:8: queue: Invalid input: expected object, received number',
      'x.yaml:5:3: http.listen: Invalid input: expected string, received array',
      'x.yaml:7:7: http.routes.0: Invalid input: expected object, received number',
      'x.yaml:9:15: http.routes.2.name: duplicate name "a" (also at index 1)',
    ]);
  });

  it('the error carries structured problems too', () => {
    let caught: unknown;
    try {
      parseConfig(minimal('bogus: 1'), 'x.yaml', {});
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).problems).toEqual([{ line: 4, col: 1, key: 'bogus', message: 'unknown key' }]);
    expect((caught as ConfigError).file).toBe('x.yaml');
  });
});

describe('fuzz: mutated example configs', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  // mulberry32: small, seeded, good enough to make the mutations reproducible.
  function prng(seed: number): () => number {
    let state = seed;
    return () => {
      state = (state + 0x6d2b79f5) | 0;
      let t = Math.imul(state ^ (state >>> 15), 1 | state);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  const noise = [':', '-', ' ', '{', '}', '[', ']', '&', '*', '$', '${', "'", '"', '\t', '\n', '#', '!', '?', ',', '|', '>', '%', '@', '0', 'x', '<<: '];

  function mutator(random: () => number): (text: string) => string {
    const int = (n: number) => Math.floor(random() * n);
    return (text) => {
      const lines = text.split('\n');
      switch (int(7)) {
        case 0: {
          const i = int(text.length); // delete a character
          return text.slice(0, i) + text.slice(i + 1);
        }
        case 1: {
          const i = int(text.length); // duplicate a character
          return text.slice(0, i) + text[i] + text.slice(i);
        }
        case 2: {
          const i = int(text.length - 1); // swap two neighbours
          return text.slice(0, i) + text[i + 1] + text[i] + text.slice(i + 2);
        }
        case 3:
          lines.splice(int(lines.length), 1); // delete a line
          return lines.join('\n');
        case 4: {
          const i = int(lines.length); // duplicate a line
          lines.splice(i, 0, lines[i] ?? '');
          return lines.join('\n');
        }
        case 5: {
          const i = int(lines.length); // swap two lines
          const j = int(lines.length);
          [lines[i], lines[j]] = [lines[j] ?? '', lines[i] ?? ''];
          return lines.join('\n');
        }
        default: {
          const i = int(text.length); // insert YAML punctuation
          return text.slice(0, i) + noise[int(noise.length)] + text.slice(i);
        }
      }
    };
  }

  it('300 mutations either parse or fail with FILE:LINE:COL lines only (seeded, reproducible)', () => {
    // Seed 11 reaches an alias without an anchor, which used to escape as a ReferenceError.
    const random = prng(11);
    const mutate = mutator(random);
    const warn = vi.spyOn(process, 'emitWarning');
    const outcomes = { valid: 0, invalid: 0 };
    for (let n = 0; n < 300; n++) {
      let text = exampleText;
      const count = 1 + Math.floor(random() * 3);
      for (let m = 0; m < count; m++) text = mutate(text);
      try {
        parseConfig(text, 'fuzz.yaml', {});
        outcomes.valid += 1;
      } catch (error) {
        if (!(error instanceof ConfigError)) throw new Error(`case ${n}: ${String(error)}\n--- input ---\n${text}`, { cause: error });
        outcomes.invalid += 1;
        for (const line of error.message.split('\n')) {
          expect(line, `case ${n}\n--- input ---\n${text}`).toMatch(/^[^:]+:\d+:\d+: /);
        }
      }
    }
    expect(outcomes.valid).toBeGreaterThan(0);
    expect(outcomes.invalid).toBeGreaterThan(0);
    expect(warn).not.toHaveBeenCalled();
  });
});

describe('fleets (select)', () => {
  it('a container target is one container or a select, with host (docker/podman) or remote (incus/lxd)', () => {
    const config = parse(minimal(
      '  web: { runtime: docker, select: { labels: { app: web, tier: 2 }, name: "web-*" }, host: "tcp://127.0.0.1:2375" }',
      '  edge: { runtime: incus, select: { labels: { app: edge } }, remote: edge1, project: default }',
      'http: { listen: "127.0.0.1:8080", routes: [{ name: r, path: /r, target: web, dest: /srv, retain: true }] }',
      'watch: [{ name: w, path: /tmp, target: edge, dest: /srv, retain: true }]',
      'retain_max: 10MiB',
    ));
    expect(config.targets.web).toEqual({ runtime: 'docker', select: { labels: { app: 'web', tier: '2' }, name: 'web-*' }, host: 'tcp://127.0.0.1:2375' });
    expect(config.targets.edge).toMatchObject({ select: { labels: { app: 'edge' } }, remote: 'edge1' });
    expect(config.http?.routes[0]?.retain).toBe(true);
    expect(config.retain_max).toBe(10 * 2 ** 20);
  });

  it.each([
    ['both container and select', '  web: { runtime: docker, container: a, select: { labels: { app: web } } }', 'x.yaml:4:41: targets.web.select: name one container or a select, not both'],
    ['neither', '  web: { runtime: podman }', 'x.yaml:4:3: targets.web.container: expected container (one container) or select (a fleet: labels and/or a name glob)'],
    ['a select that matches everything', '  web: { runtime: lxd, select: {} }', 'x.yaml:4:24: targets.web.select: a select needs labels or a name glob: it would match every container'],
    ['a bad label key', '  web: { runtime: docker, select: { labels: { "a b": x } } }', 'x.yaml:4:54: targets.web.select.labels.a b: expected a label key of letters, digits, ".", "_", "/" or "-"'],
    ['a host that is no daemon URL', '  web: { runtime: docker, container: a, host: "/run/docker.sock" }', 'x.yaml:4:47: targets.web.host: expected a daemon URL like unix:///run/docker.sock or tcp://127.0.0.1:2375'],
    ['a remote on docker', '  web: { runtime: docker, container: a, remote: edge }', 'x.yaml:4:41: targets.web.remote: unknown key'],
  ])('%s is refused at FILE:LINE:COL', (_label, line, message) => {
    expect(problems(minimal(line))).toContain(message);
  });

  it('a legacy rule cannot use a fleet, and retain is for drop watches', () => {
    expect(problems(minimal(
      '  web: { runtime: docker, select: { labels: { app: web } } }',
      'http: { listen: "127.0.0.1:8080", legacy: [{ target: web, path_prefix: /srv }] }',
      'watch: [{ name: w, path: /tmp, target: web, dest: /srv, mode: mirror, retain: true }]',
    ))).toEqual([
      'x.yaml:5:54: http.legacy.0.target: "web" is a fleet (select); a legacy rule needs a target with one container (X-Container-Name names it)',
      'x.yaml:6:79: watch.0.retain: retain applies to mode: drop only (a mirror brings a new container its current content anyway)',
    ]);
  });
});
