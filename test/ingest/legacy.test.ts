// POST /upload, the original design's protocol: X-File-Path names the absolute path in
// the container, X-Container-Name the container (for a local target: its name, `box`),
// allowed only where an http.legacy rule says so.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startAgent, type TestAgent } from '../helpers/agent.js';
import { expectError, expectNoTrace, journalEntries, json, open, send, spoolFiles } from '../helpers/http.js';
import { gatedTarget } from '../helpers/targets.js';
import { waitFor } from '../helpers/wait.js';

const LEGACY = '  legacy:\n    - { target: box, path_prefix: /var/legacy, token: legacy-token }';
const TWO_RULES = `${LEGACY}\n    - { target: box, path_prefix: /opt/other, token: other-token }`;
const AUTH = 'Bearer legacy-token';

function legacyUpload(t: TestAgent, headers: Record<string, string>, body = 'legacy body') {
  return send(t.url, '/upload', { method: 'POST', headers, body });
}

const as = (filePath: string, container = 'box', authorization = AUTH) => ({
  authorization,
  'x-container-name': container,
  'x-file-path': filePath,
});

describe('POST /upload allowed by http.legacy', () => {
  it('composes with the helper config: the rule is loaded', async () => {
    const t = await startAgent({ http: LEGACY });
    expect(t.config.http?.legacy).toEqual([{ target: 'box', path_prefix: '/var/legacy', token: 'legacy-token' }]);
  });

  it('answers 202 with the task and lands the file at that absolute path', async () => {
    const t = await startAgent({ http: LEGACY });
    const answer = await legacyUpload(t, as('/var/legacy/sub/app.conf'), 'key = value\n');
    expect(answer.status).toBe(202);
    const task = json(answer);
    expect(task).toMatchObject({ route: 'legacy', target: 'box', dest: '/var/legacy/sub/app.conf', bytes: 12 });
    expect(answer.headers.location).toBe(`/tasks/${String(task.id)}`);
    const landed = path.join(t.root, 'var/legacy/sub/app.conf');
    await waitFor(() => readFile(landed, 'utf8').then((text) => text === 'key = value\n', () => false), { what: 'the file to land' });
  });

  it('reads X-File-Path as UTF-8 (node hands header bytes over as latin1)', async () => {
    const t = await startAgent({ http: LEGACY });
    const latin1 = Buffer.from('/var/legacy/café ☕.txt', 'utf8').toString('latin1');
    const answer = await legacyUpload(t, as(latin1));
    expect(answer.status).toBe(202);
    expect(json(answer).dest).toBe('/var/legacy/café ☕.txt');
  });

  it('waits for the push with Prefer: wait like any upload', async () => {
    const t = await startAgent({ http: LEGACY });
    const answer = await legacyUpload(t, { ...as('/var/legacy/now.txt'), prefer: 'wait=5' }, 'now');
    expect(answer.status).toBe(200);
    expect(json(answer).status).toBe('done');
    expect(await readFile(path.join(t.root, 'var/legacy/now.txt'), 'utf8')).toBe('now');
  });
});

describe('POST /upload refused', () => {
  const forbidden: [string, Record<string, string>][] = [
    ['another container', as('/var/legacy/a.txt', 'web-1')],
    ['a container name differing only in case', as('/var/legacy/a.txt', 'BOX')],
    ['a path outside the prefix', as('/etc/passwd')],
    ['a sibling sharing the prefix as a string', as('/var/legacy2/x')],
    ['the prefix itself', as('/var/legacy')],
    ['the parent of the prefix', as('/var')],
  ];

  it.each(forbidden)('%s → 403 FORBIDDEN', async (_label, headers) => {
    const t = await startAgent({ http: LEGACY });
    expectError(await legacyUpload(t, headers), 403, 'FORBIDDEN');
    await expectNoTrace(t);
  });

  const unauthorized: [string, string | undefined][] = [
    ['no token', undefined],
    ['a wrong token', 'Bearer nope'],
    ['a route token', 'Bearer s3cret-token'],
    ['the token without Bearer', 'legacy-token'],
  ];

  it.each(unauthorized)('%s → 401 UNAUTHORIZED with WWW-Authenticate', async (_label, authorization) => {
    const t = await startAgent({ http: LEGACY });
    const { authorization: _drop, ...rest } = as('/var/legacy/a.txt');
    const answer = await legacyUpload(t, authorization === undefined ? rest : { ...rest, authorization });
    expectError(answer, 401, 'UNAUTHORIZED');
    expect(answer.headers['www-authenticate']).toBe('Bearer');
    await expectNoTrace(t);
  });

  it("refuses one rule's token for another rule's prefix with 403, and allows each in its own", async () => {
    const t = await startAgent({ http: TWO_RULES });
    expectError(await legacyUpload(t, as('/opt/other/x.txt')), 403, 'FORBIDDEN');
    expectError(await legacyUpload(t, as('/var/legacy/x.txt', 'box', 'Bearer other-token')), 403, 'FORBIDDEN');
    expect((await legacyUpload(t, as('/opt/other/x.txt', 'box', 'Bearer other-token'))).status).toBe(202);
    expect((await legacyUpload(t, as('/var/legacy/x.txt'))).status).toBe(202);
  });

  const badPaths: [string, string][] = [
    ['a relative path', 'var/legacy/a.txt'],
    ['a bare name', 'a.txt'],
    ['a parent reference under the prefix', '/var/legacy/../../etc/passwd'],
    ['a dot segment', '/var/legacy/./a.txt'],
    ['an empty segment', '/var/legacy//a.txt'],
    ['a backslash', '/var/legacy/a\\b.txt'],
    // X-File-Path names a file: a trailing "/" names a directory.
    ['the prefix with a trailing slash', '/var/legacy/'],
    ['a trailing slash under the prefix', '/var/legacy/dir/'],
    ['the root', '/'],
    // Node hands header bytes over as latin1: these are the bytes sent.
    ['bytes that are not UTF-8 (latin1 é)', '/var/legacy/caf\u00e9.txt'],
    ['a lone UTF-8 continuation byte', '/var/legacy/a\u0080.txt'],
    ['an overlong "." (C0 AE)', '/var/legacy/\u00c0\u00ae\u00c0\u00ae/a.txt'],
    ['a decomposed é (UTF-8 of e + U+0301)', Buffer.from('/var/legacy/cafe\u0301.txt', 'utf8').toString('latin1')],
    ['a zero-width joiner', Buffer.from('/var/legacy/a\u200db.txt', 'utf8').toString('latin1')],
  ];

  it.each(badPaths)('%s → 400 BAD_PATH', async (_label, filePath) => {
    const t = await startAgent({ http: LEGACY });
    expectError(await legacyUpload(t, as(filePath)), 400, 'BAD_PATH');
    await expectNoTrace(t);
  });

  it.each([['x-file-path'], ['x-container-name']])('a missing %s header → 400 BAD_REQUEST', async (header) => {
    const t = await startAgent({ http: LEGACY });
    const headers = Object.fromEntries(Object.entries(as('/var/legacy/a.txt')).filter(([name]) => name !== header));
    expectError(await legacyUpload(t, headers), 400, 'BAD_REQUEST');
    await expectNoTrace(t);
  });

  it('answers before reading the body when refused', async () => {
    const t = await startAgent({ http: LEGACY });
    const upload = open(t.url, '/upload', { method: 'POST', headers: { ...as('/etc/shadow'), 'content-length': 1_000_000 } });
    const answer = await upload.answer;
    upload.req.destroy();
    expectError(answer, 403, 'FORBIDDEN');
    expect(answer.headers.connection).toBe('close');
  });

  it('answers 404 when http.legacy is not configured at all', async () => {
    const t = await startAgent();
    expectError(await legacyUpload(t, as('/var/legacy/a.txt')), 404, 'NOT_FOUND');
    await expectNoTrace(t);
  });

  it('answers a GET /upload with 405 Allow: POST', async () => {
    const t = await startAgent({ http: LEGACY });
    const answer = await send(t.url, '/upload', { method: 'GET' });
    expectError(answer, 405, 'METHOD_NOT_ALLOWED');
    expect(answer.headers.allow).toBe('POST');
  });
});

describe('Idempotency-Key on POST /upload: unique per legacy rule and token', () => {
  // Two tenants allowed the same paths, each with its own token; tenant a has a second rule.
  const TENANTS = [
    '  legacy:',
    '    - { target: box, path_prefix: /var/shared, token: token-a }',
    '    - { target: box, path_prefix: /var/shared, token: token-b }',
    '    - { target: box, path_prefix: /opt/a, token: token-a }',
  ].join('\n');
  interface Request {
    tenant: 'a' | 'b';
    path: string;
    body: string;
    /** Through the `files` route (PUT /drop/files<path>) instead of POST /upload. */
    route?: boolean;
    headers?: Record<string, string>;
  }
  const upload = (t: TestAgent, r: Request) => {
    const headers = { 'idempotency-key': 'k-1', ...r.headers };
    if (r.route) return send(t.url, `/drop/files${r.path}`, { headers, body: r.body });
    return legacyUpload(t, { ...as(r.path, 'box', `Bearer token-${r.tenant}`), ...headers }, r.body);
  };
  const landedAt = (t: TestAgent, r: Request) => path.join(t.root, r.route ? `srv/files${r.path}` : r.path);
  const first: Request = { tenant: 'a', path: '/var/shared/app.conf', body: 'from a' };
  const sha256 = (text: string) => createHash('sha256').update(text).digest('base64');

  // What the second request gets: the first task again, a task of its own, or this error.
  const cases: [string, Request, 'same task' | 'own task' | [number, string]][] = [
    ['the same tenant, path and bytes (a retry)', first, 'same task'],
    ['another tenant, same path and bytes', { ...first, tenant: 'b' }, 'own task'],
    ['another tenant, same path, other bytes', { ...first, tenant: 'b', body: 'from b' }, 'own task'],
    ['the same tenant, same path, other bytes', { ...first, body: 'changed' }, [422, 'IDEMPOTENCY_KEY_REUSED']],
    ['the same tenant, another path', { ...first, path: '/var/shared/other.conf' }, [422, 'IDEMPOTENCY_KEY_REUSED']],
    ['the same tenant and bytes, a Content-Digest that does not match them', { ...first, headers: { 'content-digest': `sha-256=:${sha256('other')}:` } }, [422, 'CHECKSUM_MISMATCH']],
    ["the same token under another of its rules", { ...first, path: '/opt/a/app.conf' }, 'own task'],
    ['a route, same key', { ...first, path: '/app.conf', route: true }, 'own task'],
  ];

  it.each(cases)('%s', async (_label, second, expected) => {
    const t = await startAgent({ http: TENANTS });
    const one = await upload(t, first);
    expect(one.status).toBe(202);
    const staged = async () => (await spoolFiles(t)).length;
    await waitFor(async () => (await readFile(landedAt(t, first), 'utf8').catch(() => '')) === first.body && (await staged()) === 0, { what: 'the first file to land' });
    const two = await upload(t, second);
    const adds = async () => (await journalEntries(t)).filter((e) => e.op === 'add').length;
    if (Array.isArray(expected)) {
      expectError(two, ...expected);
      expect(await adds()).toBe(1);
      expect(await staged()).toBe(0);
    } else if (expected === 'same task') {
      expect(two.status).toBe(202);
      expect(json(two).id).toBe(json(one).id);
      expect(two.headers.location).toBe(one.headers.location);
      expect(await adds()).toBe(1);
      expect(await staged()).toBe(0); // its body was hashed, never staged
    } else {
      expect(two.status).toBe(202);
      expect(json(two).id).not.toBe(json(one).id);
      expect(await adds()).toBe(2);
      await waitFor(async () => (await readFile(landedAt(t, second), 'utf8').catch(() => '')) === second.body, { what: "the second request's bytes to land" });
    }
    expect(await readFile(landedAt(t, first), 'utf8')).toBe(landedAt(t, second) === landedAt(t, first) && expected === 'own task' ? second.body : first.body);
    expect((await legacyUpload(t, as('/var/legacy/after.txt', 'box', 'Bearer token-a'))).status).toBe(403); // still serving
  });

  it('keeps each tenant its keys across a restart', async () => {
    const gate = gatedTarget(); // the task stays live in the journal
    const before = await startAgent({ http: TENANTS, createTarget: gate.createTarget });
    const one = await upload(before, first);
    expect(one.status).toBe(202);
    await before.close();
    const after = await startAgent({ http: TENANTS, dir: before.dir, createTarget: gatedTarget().createTarget });
    expect(json(await upload(after, first)).id).toBe(json(one).id);
    const other = await upload(after, { ...first, tenant: 'b' });
    expect(other.status).toBe(202);
    expect(json(other).id).not.toBe(json(one).id);
    expectError(await upload(after, { ...first, body: 'changed' }), 422, 'IDEMPOTENCY_KEY_REUSED');
  });
});
