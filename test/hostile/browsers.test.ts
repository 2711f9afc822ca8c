// Hostile browsers (issue 10, item 7; SPEC §9): a page of another site reaches the agent
// through its visitor's browser. A cross-site form post carries the page's Origin; a page
// whose name was rebound to 127.0.0.1 (DNS rebinding) sends its own name as Host. Both
// are refused before routing, on token-less routes and on the operator reads alike; a
// client without Origin (curl, scripts) and the listener's own origin are not.
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { testConfigYaml } from '../helpers/agent.js';
import { expectConfined, expectOutcome, expectTasks, exchange, lands, rawRequest, sharedAgent, tally, waitLanded, type Outcome } from './harness.js';

const ALLOWED = ['  allowed_hosts: [files.example.com, .corp.example]', '  allowed_origins: [https://app.example.com, "http://localhost:3000"]'].join('\n');
const BODY = 'payload';
const FORM = `--b\r\nContent-Disposition: form-data; name="f"; filename="form.txt"\r\n\r\n${BODY}\r\n--b--\r\n`;

// PORT stands for the listener's port, OTHER for another one, "@" in a target for the row's number.
// [label, method and target, header fields, outcome]; a PUT carries "payload".
type Row = [string, string, Record<string, string | string[]>, Outcome];
const put = 'PUT /drop/files/b/@.txt';
const own = { host: '127.0.0.1:PORT' };
const rows: Row[] = [
  // Host: IP literals, localhost and the listen host on any port, listed names; other names are refused
  ['Host 127.0.0.1:PORT (the listener)', put, own, '/srv/files/b/@.txt'],
  ['Host 127.0.0.1 without a port', put, { host: '127.0.0.1' }, '/srv/files/b/@.txt'],
  ['Host localhost:PORT', put, { host: 'localhost:PORT' }, '/srv/files/b/@.txt'],
  ['Host LOCALHOST:PORT', put, { host: 'LOCALHOST:PORT' }, '/srv/files/b/@.txt'],
  ['Host app.localhost:PORT (RFC 6761: loopback only)', put, { host: 'app.localhost:PORT' }, '/srv/files/b/@.txt'],
  ['Host [::1]:PORT', put, { host: '[::1]:PORT' }, '/srv/files/b/@.txt'],
  ['Host 10.1.2.3:OTHER (an IP on another port: a port forward)', put, { host: '10.1.2.3:OTHER' }, '/srv/files/b/@.txt'],
  ['Host localhost:OTHER (kubectl port-forward, docker -p)', put, { host: 'localhost:OTHER' }, '/srv/files/b/@.txt'],
  ['Host evil.example:PORT (DNS rebinding)', put, { host: 'evil.example:PORT' }, 'UNKNOWN_HOST'],
  ['Host evil.example', put, { host: 'evil.example' }, 'UNKNOWN_HOST'],
  ['Host localhost.evil.example', put, { host: 'localhost.evil.example:PORT' }, 'UNKNOWN_HOST'],
  ['Host 127.0.0.1.nip.io (a name that resolves to loopback)', put, { host: '127.0.0.1.nip.io:PORT' }, 'UNKNOWN_HOST'],
  ['Host 2130706433 (127.0.0.1 as a number: a name here)', put, { host: '2130706433:PORT' }, 'UNKNOWN_HOST'],
  ['Host files.example.com:PORT (listed)', put, { host: 'files.example.com:PORT' }, '/srv/files/b/@.txt'],
  ['Host FILES.Example.COM. (listed; case and a trailing dot)', put, { host: 'FILES.Example.COM.' }, '/srv/files/b/@.txt'],
  ['Host x.files.example.com (a name under an exact entry)', put, { host: 'x.files.example.com' }, 'UNKNOWN_HOST'],
  ['Host corp.example (".corp.example" lists it)', put, { host: 'corp.example' }, '/srv/files/b/@.txt'],
  ['Host a.b.corp.example (and every name under it)', put, { host: 'a.b.corp.example:PORT' }, '/srv/files/b/@.txt'],
  ['Host evilcorp.example (a suffix, not a subdomain)', put, { host: 'evilcorp.example' }, 'UNKNOWN_HOST'],
  ['an empty Host', put, { host: '' }, 'BAD_REQUEST'],
  ['Host user@127.0.0.1', put, { host: 'user@127.0.0.1:PORT' }, 'BAD_REQUEST'],
  ['Host 127.0.0.1:99999', put, { host: '127.0.0.1:99999' }, 'BAD_REQUEST'],
  ['Host "a b"', put, { host: 'a b' }, 'BAD_REQUEST'],
  ['an absolute-form target naming evil.example, Host the listener', 'PUT http://evil.example/drop/files/b/@.txt', own, 'UNKNOWN_HOST'],
  ['GET /status, Host evil.example (a rebound page reading host paths)', 'GET /status', { host: 'evil.example:PORT' }, 'UNKNOWN_HOST'],
  ['GET /dead-letter, Host evil.example', 'GET /dead-letter', { host: 'evil.example:PORT' }, 'UNKNOWN_HOST'],
  ['GET /healthz, Host evil.example', 'GET /healthz', { host: 'evil.example:PORT' }, 'UNKNOWN_HOST'],
  // Origin: absent, the listener's own, or listed
  ['no Origin (curl, a script)', put, own, '/srv/files/b/@.txt'],
  ['Origin https://evil.example on a token-less route', put, { ...own, origin: 'https://evil.example' }, 'FORBIDDEN_ORIGIN'],
  ['a cross-site form post (multipart, Origin https://evil.example)', 'POST /drop/files/b', { ...own, origin: 'https://evil.example', 'content-type': 'multipart/form-data; boundary=b' }, 'FORBIDDEN_ORIGIN'],
  ['Origin http://127.0.0.1:PORT (own)', put, { ...own, origin: 'http://127.0.0.1:PORT' }, '/srv/files/b/@.txt'],
  ['Origin https://127.0.0.1:PORT (own, through a TLS proxy)', put, { ...own, origin: 'https://127.0.0.1:PORT' }, '/srv/files/b/@.txt'],
  ['Origin http://127.0.0.1:OTHER (another local site)', put, { ...own, origin: 'http://127.0.0.1:OTHER' }, 'FORBIDDEN_ORIGIN'],
  ['Origin http://127.0.0.1 (port 80: another site)', put, { ...own, origin: 'http://127.0.0.1' }, 'FORBIDDEN_ORIGIN'],
  ['Origin http://localhost:PORT, Host 127.0.0.1:PORT (another origin)', put, { ...own, origin: 'http://localhost:PORT' }, 'FORBIDDEN_ORIGIN'],
  ['Origin http://localhost:PORT, Host localhost:PORT', put, { host: 'localhost:PORT', origin: 'http://localhost:PORT' }, '/srv/files/b/@.txt'],
  ['Origin http://files.example.com, Host files.example.com (both port 80)', put, { host: 'files.example.com', origin: 'http://files.example.com' }, '/srv/files/b/@.txt'],
  ['Origin http://files.example.com:8080, Host files.example.com', put, { host: 'files.example.com', origin: 'http://files.example.com:8080' }, 'FORBIDDEN_ORIGIN'],
  ['Origin null (a sandboxed or file: page)', put, { ...own, origin: 'null' }, 'FORBIDDEN_ORIGIN'],
  ['Origin https://app.example.com (listed)', put, { ...own, origin: 'https://app.example.com' }, '/srv/files/b/@.txt'],
  ['Origin https://APP.example.com:443 (listed, spelled otherwise)', put, { ...own, origin: 'https://APP.example.com:443' }, '/srv/files/b/@.txt'],
  ['Origin http://app.example.com (listed for https only)', put, { ...own, origin: 'http://app.example.com' }, 'FORBIDDEN_ORIGIN'],
  ['Origin https://app.example.com.evil.example', put, { ...own, origin: 'https://app.example.com.evil.example' }, 'FORBIDDEN_ORIGIN'],
  ['Origin https://app.example.com/page (not an origin)', put, { ...own, origin: 'https://app.example.com/page' }, 'FORBIDDEN_ORIGIN'],
  ['Origin http://localhost:3000 (listed)', put, { ...own, origin: 'http://localhost:3000' }, '/srv/files/b/@.txt'],
  ['Origin "evil"', put, { ...own, origin: 'evil' }, 'FORBIDDEN_ORIGIN'],
  ['two Origin fields, own then foreign', put, { ...own, origin: ['http://127.0.0.1:PORT', 'https://evil.example'] }, 'BAD_REQUEST'],
  ['GET /status from https://evil.example', 'GET /status', { ...own, origin: 'https://evil.example' }, 'FORBIDDEN_ORIGIN'],
  ['POST /dead-letter/retry from https://evil.example', 'POST /dead-letter/retry', { ...own, origin: 'https://evil.example' }, 'FORBIDDEN_ORIGIN'],
];

function request(t: { url: string }, [head, fields]: [string, Row[2]], i: number): Buffer {
  const { port } = new URL(t.url);
  const fill = (text: string) => text.replaceAll('PORT', port).replaceAll('OTHER', String(Number(port) === 9 ? 10 : 9));
  const [method = '', target = ''] = head.replace('@', String(i)).split(' ');
  const body = method === 'POST' && target.startsWith('/drop/') ? FORM : method === 'PUT' ? BODY : '';
  const filled = Object.fromEntries(Object.entries(fields).map(([name, value]) => [name, Array.isArray(value) ? value.map(fill) : fill(value)]));
  return rawRequest(method, fill(target), { 'content-length': body.length, ...filled }, body);
}

describe('hostile browsers (allowed_hosts and allowed_origins set)', () => {
  const agent = sharedAgent({ http: ALLOWED });
  const counts = tally('hostile browsers');

  it.each(rows.map(([label, head, fields, outcome], i) => [label, head, fields, outcome, i] as const))('%s', async (_label, head, fields, outcome, i) => {
    const t = agent();
    counts.tried += 1;
    const expected = outcome.replace('@', String(i)) as Outcome;
    const { answer } = await expectTasks(t, lands(expected) ? 1 : 0, () => exchange(t.url, request(t, [head, fields], i)));
    expectOutcome(answer, expected);
    if (!lands(expected)) return void (counts.refused += 1);
    await waitLanded(t, expected, BODY);
    counts.landed += 1;
  });

  it('wrote nothing outside the routes\u2019 dests', async () => {
    await expectConfined(agent(), counts);
    expect(counts.refused + counts.landed).toBe(rows.length);
  });
});

describe('http.allowed_hosts and http.allowed_origins in the config', () => {
  const problems = (lines: string) => {
    try {
      parseConfig(testConfigYaml('/x', { http: lines }), 'x.yaml', {});
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as ConfigError).message.split('\n');
    }
    return [];
  };

  it.each([
    ['a host with a port', '  allowed_hosts: ["files.example.com:8080"]', 'http.allowed_hosts.0: expected a host name'],
    ['a host with a scheme', '  allowed_hosts: ["http://files.example.com"]', 'http.allowed_hosts.0: expected a host name'],
    ['an empty host', '  allowed_hosts: [""]', 'http.allowed_hosts.0: expected a host name'],
    ['an origin with a path', '  allowed_origins: ["https://app.example.com/"]', 'http.allowed_origins.0: expected an origin'],
    ['an origin "null"', '  allowed_origins: ["null"]', 'http.allowed_origins.0: expected an origin'],
    ['an origin "*"', '  allowed_origins: ["*"]', 'http.allowed_origins.0: expected an origin'],
    ['an origin with a port past 65535', '  allowed_origins: ["http://localhost:70000"]', 'http.allowed_origins.0: expected an origin with a valid host'],
  ])('refuses %s with FILE:LINE:COL', (_label, lines, message) => {
    const found = problems(lines);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^x\.yaml:\d+:\d+: /);
    expect(found[0]).toContain(message);
  });

  it('takes names, ".suffix" names and http(s) origins, none by default', () => {
    expect(problems('  allowed_hosts: [files.example.com, .corp.example, my_box]\n  allowed_origins: ["https://app.example.com", "http://[::1]:3000"]')).toEqual([]);
    const config = parseConfig(testConfigYaml('/x'), 'x.yaml', {});
    expect(config.http).toMatchObject({ allowed_hosts: [], allowed_origins: [] });
  });
});
