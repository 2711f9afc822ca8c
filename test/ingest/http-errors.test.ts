// SPEC §3's request errors over the wire: the path, the token, the route, the method.
// Every answer must be the JSON error shape, and no refused request may leave a staged
// file, a journal line or a queued task behind.
import { readdir } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { startAgent } from '../helpers/agent.js';
import { expectError, expectNoTrace, fromFetch, json, open, rawExchange, send } from '../helpers/http.js';

const TOKEN = { authorization: 'Bearer s3cret-token' };

const landedNothing = async (root: string) => expect(await readdir(root).catch(() => [])).toEqual([]);

describe('400 BAD_PATH, sent as a raw request target (fetch would resolve the dots first)', () => {
  const rawPaths: [string, string][] = [
    ['raw ../ escaping the route', '/drop/files/../../etc/passwd'],
    ['raw .. into a sibling route', '/drop/files/../secret/x.txt'],
    ['raw .. staying inside the route', '/drop/files/a/../b.txt'],
    ['raw . segment', '/drop/files/a/./b.txt'],
    ['%2e%2e', '/drop/files/%2e%2e/%2e%2e/etc/passwd'],
    ['mixed-case .%2E', '/drop/files/a/.%2E/b.txt'],
    ['%2E. at the start', '/drop/files/%2E./x'],
    ['%2e alone', '/drop/files/a/%2e/b.txt'],
    ['encoded slashes ..%2f..%2f', '/drop/files/..%2f..%2fetc%2fpasswd'],
    ['raw backslashes', '/drop/files/a\\..\\..\\b'],
    ['encoded backslash', '/drop/files/..%5cb'],
    ['encoded NUL', '/drop/files/a.txt%00.jpg'],
    ['overlong UTF-8 dots', '/drop/files/%c0%ae%c0%ae/x'],
    ['empty segment', '/drop/files/a//b.txt'],
    ['trailing slash', '/drop/files/a/'],
    ['no file name at all', '/drop/files/'],
    ['over 4096 bytes', `/drop/files/${'abcdefg/'.repeat(520)}z`],
  ];

  it.each(rawPaths)('%s → 400 BAD_PATH, nothing staged', async (_label, rawPath) => {
    const t = await startAgent();
    const answer = await send(t.url, rawPath, { method: 'PUT', body: 'payload' });
    expectError(answer, 400, 'BAD_PATH');
    await expectNoTrace(t);
    await landedNothing(t.root);
  });

  it('also refuses a multipart POST whose directory is a traversal', async () => {
    const t = await startAgent();
    const headers = { 'content-type': 'multipart/form-data; boundary=xyz' };
    const body = '--xyz\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n\r\nA\r\n--xyz--\r\n';
    expectError(await send(t.url, '/drop/files/%2e%2e', { method: 'POST', headers, body }), 400, 'BAD_PATH');
    await expectNoTrace(t);
  });

  it('refuses a traversal in an absolute-form request target too', async () => {
    const t = await startAgent();
    expectError(await send(t.url, `${t.url}/drop/files/a/../b.txt`, { body: 'x' }), 400, 'BAD_PATH');
    await expectNoTrace(t);
  });

  const fine: [string, string, string][] = [
    ['an encoded name', '/drop/files/dir/caf%C3%A9%20menu.txt', '/srv/files/dir/café menu.txt'],
    ['a query string, which is not part of the path', '/drop/files/q.txt?overwrite=1&x=..%2f', '/srv/files/q.txt'],
    ['an absolute-form request target', 'ABSOLUTE/drop/files/abs.txt', '/srv/files/abs.txt'],
    ['dots inside a name', '/drop/files/..hidden/a..b.txt', '/srv/files/..hidden/a..b.txt'],
  ];

  it.each(fine)('accepts %s over the same raw client (control)', async (_label, rawPath, dest) => {
    const t = await startAgent();
    const answer = await send(t.url, rawPath.replace('ABSOLUTE', t.url), { body: 'ok' });
    expect(answer.status).toBe(202);
    expect(json(answer).dest).toBe(dest);
  });
});

describe('401 UNAUTHORIZED', () => {
  const badAuth: [string, Record<string, string>][] = [
    ['no Authorization header', {}],
    ['a wrong token', { authorization: 'Bearer wrong-token' }],
    ['the token in the wrong case', { authorization: 'Bearer S3CRET-TOKEN' }],
    ['a prefix of the token', { authorization: 'Bearer s3cret' }],
    ['the token with Basic', { authorization: `Basic ${Buffer.from('x:s3cret-token').toString('base64')}` }],
    ['Bearer without a token', { authorization: 'Bearer ' }],
  ];

  it.each(badAuth)('%s → 401 with WWW-Authenticate: Bearer', async (_label, headers) => {
    const t = await startAgent();
    const answer = await fromFetch(await fetch(`${t.url}/drop/secret/x.txt`, { method: 'PUT', headers, body: 'secret' }));
    expectError(answer, 401, 'UNAUTHORIZED');
    expect(answer.headers['www-authenticate']).toBe('Bearer');
    await expectNoTrace(t);
  });

  it('answers before reading the body (headers sent, body never comes)', async () => {
    const t = await startAgent();
    const upload = open(t.url, '/drop/secret/x.txt', { headers: { 'content-length': 1_000_000 } });
    const answer = await upload.answer;
    upload.req.destroy();
    expectError(answer, 401, 'UNAUTHORIZED');
    expect(answer.headers.connection).toBe('close');
    await expectNoTrace(t);
  });

  it('answers Expect: 100-continue with the 401, never asking for the body', async () => {
    const t = await startAgent();
    const head = 'PUT /drop/secret/x.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000000\r\nExpect: 100-continue\r\n\r\n';
    const reply = await rawExchange(t.url, head);
    expect(reply).toMatch(/^HTTP\/1\.1 401 /);
    expect(reply).not.toContain('100 Continue');
    await expectNoTrace(t);
  });

  it('accepts the right token, with any case of "Bearer"', async () => {
    const t = await startAgent();
    for (const scheme of ['Bearer', 'bearer']) {
      const res = await fetch(`${t.url}/drop/secret/${scheme}.txt`, { method: 'PUT', headers: { authorization: `${scheme} s3cret-token` }, body: 'x' });
      expect(res.status).toBe(202);
    }
  });
});

describe('403 FORBIDDEN', () => {
  it('refuses a legacy upload for a container that http.legacy does not name', async () => {
    const t = await startAgent({ http: '  legacy:\n    - { target: box, path_prefix: /var/legacy, token: legacy-token }' });
    const headers = { authorization: 'Bearer legacy-token', 'x-container-name': 'elsewhere', 'x-file-path': '/var/legacy/a.txt' };
    const answer = await fromFetch(await fetch(`${t.url}/upload`, { method: 'POST', headers, body: 'x' }));
    expectError(answer, 403, 'FORBIDDEN');
    await expectNoTrace(t);
  });
});

describe('404 NOT_FOUND', () => {
  const missing: [string, string, string][] = [
    ['no route at all', 'PUT', '/nowhere/x.txt'],
    ['the parent of a route', 'PUT', '/drop/x.txt'],
    ['a longer name sharing the route prefix', 'PUT', '/drop/filesystem/x.txt'],
    ['the root', 'GET', '/'],
    ['a well-formed but unknown task id', 'GET', '/tasks/AAAAAAAAAAAAAAAAAAAAAA'],
    ['a malformed task id', 'GET', '/tasks/..%2f..%2fjournal.log'],
    ['an empty task id', 'GET', '/tasks/'],
    ['POST /upload when http.legacy is not configured', 'POST', '/upload'],
  ];

  it.each(missing)('%s → 404', async (_label, method, rawPath) => {
    const t = await startAgent();
    const answer = await send(t.url, rawPath, { method, body: method === 'GET' ? undefined : 'x' });
    expectError(answer, 404, 'NOT_FOUND');
    await expectNoTrace(t);
  });
});

describe('405 METHOD_NOT_ALLOWED', () => {
  const wrong: [string, string, Record<string, string>, string][] = [
    ['GET', '/drop/files/a.txt', {}, 'PUT, POST'],
    ['DELETE', '/drop/files/a.txt', {}, 'PUT, POST'],
    ['PATCH', '/drop/secret/a.txt', TOKEN, 'PUT, POST'],
    ['GET', '/drop/files', {}, 'PUT, POST, OPTIONS'], // the route's root takes tus too
    ['PUT', '/drop/files/dir', { 'content-type': 'multipart/form-data; boundary=b' }, 'POST'],
    ['POST', '/healthz', {}, 'GET, HEAD'],
    ['PUT', '/readyz', {}, 'GET, HEAD'],
    ['DELETE', '/tasks/AAAAAAAAAAAAAAAAAAAAAA', {}, 'GET, HEAD'],
    ['GET', '/upload', {}, 'POST'],
  ];

  it.each(wrong)('%s %s → 405 with Allow: %s', async (method, rawPath, headers, allow) => {
    const t = await startAgent();
    const answer = await send(t.url, rawPath, { method, headers, body: method === 'GET' ? undefined : 'x' });
    expectError(answer, 405, 'METHOD_NOT_ALLOWED');
    expect(answer.headers.allow).toBe(allow);
    await expectNoTrace(t);
  });
});

describe('408 REQUEST_TIMEOUT for a head not in within idle_timeout', () => {
  it.each([
    ['nothing at all', ''],
    ['the request line only', 'GET /healthz HTTP/1.1\r\n'],
    ['part of the header fields', 'PUT /drop/files/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n'],
  ])('answers %s with 408 in JSON, then closes the connection', async (_what, head) => {
    const t = await startAgent({ idleTimeout: '1s' });
    const reply = await rawExchange(t.url, head);
    const [status, ...rest] = reply.split('\r\n');
    expect(status).toBe('HTTP/1.1 408 Request Timeout');
    expect(rest).toContain('connection: close');
    expect(JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4))).toMatchObject({ error: { code: 'REQUEST_TIMEOUT' } });
    expect(t.logs.filter((line) => line.msg === 'task queued')).toHaveLength(0);
  });
});

describe('the agent keeps serving after errors', () => {
  it('answers a good upload on the same agent after a run of refusals', async () => {
    const t = await startAgent();
    await send(t.url, '/drop/files/../x', { body: 'x' });
    await send(t.url, '/nowhere', { body: 'x' });
    await send(t.url, '/drop/secret/x', { body: 'x' });
    const res = await fetch(`${t.url}/drop/files/ok.txt`, { method: 'PUT', body: 'fine' });
    expect(res.status).toBe(202);
    expect(t.logs.filter((line) => line.msg === 'task queued')).toHaveLength(1);
  });

  it('keeps a connection open after an error to a request with no body: the next request on it is answered', async () => {
    const t = await startAgent();
    const get = (target: string, last = false) => `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${last ? 'Connection: close\r\n' : ''}\r\n`;
    const reply = await rawExchange(t.url, get('/nowhere') + get('/drop/files', false) + get('/healthz', true));
    expect(reply.match(/^HTTP\/1\.1 \d+/gm)).toEqual(['HTTP/1.1 404', 'HTTP/1.1 405', 'HTTP/1.1 200']);
  });

  it('closes a connection after an error to a request whose body was not read: its rest is no next request', async () => {
    const t = await startAgent();
    const reply = await rawExchange(t.url, 'PUT /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nGET /healthz HTTP/1.1\r\n');
    expect(reply.match(/^HTTP\/1\.1 \d+/gm)).toEqual(['HTTP/1.1 404']);
    expect(reply).toContain('connection: close');
  });
});
