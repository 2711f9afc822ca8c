// Hostile request targets, sent byte for byte over a bare socket to one agent that
// takes them all (SPEC §3: 400 BAD_PATH for `..`, `.`, empty segments, NUL,
// backslashes, over 4096 bytes). A name that is odd but safe lands as that literal
// name inside the route's dest; nothing may land anywhere else.
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/wait.js';
import { MARKER, TOKEN, expectConfined, expectOutcome, expectTasks, exchange, lands, rawRequest, sharedAgent, tally, waitLanded, type Outcome } from './harness.js';

// "@" in a target stands for a name of its own (MARKER-<row>): an escape is then
// visible by name wherever it landed.
const rows: [string, string, Outcome][] = [
  // encoded traversal
  ['%2e%2e twice', '/drop/files/%2e%2e/%2e%2e/@', 'BAD_PATH'],
  ['%2E%2E in upper case', '/drop/files/%2E%2E/@', 'BAD_PATH'],
  ['mixed case .%2E', '/drop/files/a/.%2E/@', 'BAD_PATH'],
  ['mixed case %2e.', '/drop/files/%2e./@', 'BAD_PATH'],
  ['..%2f (an encoded slash)', '/drop/files/..%2f..%2f@', 'BAD_PATH'],
  ['..%2F in upper case', '/drop/files/..%2F..%2Fetc%2F@', 'BAD_PATH'],
  ['%2e%2e%2f, all encoded', '/drop/files/%2e%2e%2f%2e%2e%2f@', 'BAD_PATH'],
  ['%2e%2e%5c (an encoded backslash)', '/drop/files/%2e%2e%5c%2e%2e%5c@', 'BAD_PATH'],
  ['%252e%252e: decoded once, a literal name', '/drop/files/%252e%252e/@', '/srv/files/%2e%2e/@'],
  ['..%252f: decoded once, a literal name', '/drop/files/..%252f@', '/srv/files/..%2f@'],
  ['%25%32%65%25%32%65: decoded once, a literal name', '/drop/files/%25%32%65%25%32%65/@', '/srv/files/%2e%2e/@'],
  // overlong and invalid UTF-8
  ['overlong %c0%ae%c0%ae', '/drop/files/%c0%ae%c0%ae/@', 'BAD_PATH'],
  ['overlong %e0%80%ae%e0%80%ae', '/drop/files/%e0%80%ae%e0%80%ae/@', 'BAD_PATH'],
  ['overlong slash %c0%af', '/drop/files/..%c0%af@', 'BAD_PATH'],
  ['overlong 4-byte %f0%80%80%ae', '/drop/files/%f0%80%80%ae%f0%80%80%ae/@', 'BAD_PATH'],
  ['a lone continuation byte %80', '/drop/files/%80@', 'BAD_PATH'],
  ['an encoded UTF-16 surrogate %ed%a0%80', '/drop/files/%ed%a0%80@', 'BAD_PATH'],
  // NUL
  ['%00 inside a name', '/drop/files/@%00.jpg', 'BAD_PATH'],
  ['%00 as a whole segment', '/drop/files/%00/@', 'BAD_PATH'],
  ['a raw NUL byte', '/drop/files/@\0.jpg', '400'],
  // backslashes
  ['raw backslash traversal', '/drop/files/..\\..\\@', 'BAD_PATH'],
  ['a raw backslash inside a name', '/drop/files/a\\@', 'BAD_PATH'],
  ['%5c inside a name', '/drop/files/a%5c@', 'BAD_PATH'],
  ['..%5C in upper case', '/drop/files/..%5C..%5C@', 'BAD_PATH'],
  // absolute paths after the route
  ['//etc after the route', '/drop/files//etc/@', 'BAD_PATH'],
  ['%2fetc after the route', '/drop/files/%2fetc/@', 'BAD_PATH'],
  ['%2Fetc%2F in upper case', '/drop/files/%2Fetc%2F@', 'BAD_PATH'],
  ['three slashes after the route', '/drop/files///@', 'BAD_PATH'],
  // `..` that only shows after normalization
  ['a/./../../x', '/drop/files/a/./../../@', 'BAD_PATH'],
  ['a/b/../../../x', '/drop/files/a/b/../../../@', 'BAD_PATH'],
  ['../ to the filesystem root', '/drop/files/../../../../../etc/@', 'BAD_PATH'],
  ['.. into the sibling route', '/drop/files/../secret/@', 'BAD_PATH'],
  ['.. out of the token route', '/drop/secret/../files/@', 'BAD_PATH'],
  ['a trailing /..', '/drop/files/@/..', 'BAD_PATH'],
  ['... is a literal name', '/drop/files/.../@', '/srv/files/.../@'],
  ['..; (servlet-style) is a literal name', '/drop/files/..;/@', '/srv/files/..;/@'],
  // `.` segments
  ['a . segment', '/drop/files/./@', 'BAD_PATH'],
  ['a %2e segment', '/drop/files/%2e/@', 'BAD_PATH'],
  ['a trailing /.', '/drop/files/@/.', 'BAD_PATH'],
  // Unicode look-alikes: never a separator or a dot reference; inside a name, literal
  ['U+2024 one dot leader twice (NFKC "..")', '/drop/files/%E2%80%A4%E2%80%A4/@', 'BAD_PATH'],
  ['U+2024 once (NFKC ".")', '/drop/files/%E2%80%A4/@', 'BAD_PATH'],
  ['U+FF0E fullwidth full stop twice', '/drop/files/%EF%BC%8E%EF%BC%8E/@', 'BAD_PATH'],
  ['U+FF0E then "."', '/drop/files/%EF%BC%8E./@', 'BAD_PATH'],
  ['U+2215 division slash', '/drop/files/..%E2%88%95@', 'BAD_PATH'],
  ['U+FF0F fullwidth solidus', '/drop/files/..%EF%BC%8F@', 'BAD_PATH'],
  ['U+2044 fraction slash', '/drop/files/a%E2%81%84@', 'BAD_PATH'],
  ['U+FF3C fullwidth reverse solidus', '/drop/files/..%EF%BC%BC@', 'BAD_PATH'],
  ['U+2024 inside a name lands literally', '/drop/files/a%E2%80%A4@', '/srv/files/a\u2024@'],
  ['U+FF0E inside a name lands literally', '/drop/files/@%EF%BC%8Etxt', '/srv/files/@\uff0etxt'],
  // One policy for names (names.ts): composed (NFC) only, nothing invisible, no noncharacters
  ['a decomposed é (NFD e + U+0301)', '/drop/files/cafe%CC%81-@', 'BAD_PATH'],
  ['a composed é (NFC) lands', '/drop/files/caf%C3%A9-@', '/srv/files/caf\u00e9-@'],
  ['U+00AD soft hyphen', '/drop/files/pay%C2%ADroll-@', 'BAD_PATH'],
  ['U+2060 word joiner', '/drop/files/a%E2%81%A0@', 'BAD_PATH'],
  ['U+E0041 tag letter', '/drop/files/@%F3%A0%81%81', 'BAD_PATH'],
  ['U+FFFE noncharacter', '/drop/files/@%EF%BF%BE', 'BAD_PATH'],
  ['U+FDD0 noncharacter', '/drop/files/%EF%B7%90@', 'BAD_PATH'],
  ['U+FFFD replacement character', '/drop/files/%EF%BF%BD@', 'BAD_PATH'],
  ['a segment of one space', '/drop/files/%20/@', 'BAD_PATH'],
  ['a segment of one ideographic space', '/drop/files/%E3%80%80/@', 'BAD_PATH'],
  ['a segment of one Hangul filler', '/drop/files/%E3%85%A4/@', 'BAD_PATH'],
  ['a space inside a name lands', '/drop/files/a%20b-@', '/srv/files/a b-@'],
  ['U+29F8 big solidus', '/drop/files/..%E2%A7%B8@', 'BAD_PATH'],
  ['U+2216 set minus (a backslash look-alike)', '/drop/files/..%E2%88%96@', 'BAD_PATH'],
  ['U+0338 combining long solidus overlay', '/drop/files/a%CC%B8@', 'BAD_PATH'],
  ['raw UTF-8 U+2024 twice (node refuses non-ASCII target bytes)', '/drop/files/\u2024\u2024/@', '400'],
  ['raw UTF-8 U+FF0F', '/drop/files/..\uff0f@', '400'],
  // length
  ['a 4 KiB segment', `/drop/files/${'a'.repeat(4096)}@`, 'BAD_PATH'],
  ['a 256-byte segment', `/drop/files/${'a'.repeat(256)}`, 'BAD_PATH'],
  ['a path over 4096 bytes', `/drop/files/${'abcdefg/'.repeat(520)}@`, 'BAD_PATH'],
  // "/srv/files/" + 4,064 bytes: one byte past the longest dest a staging name leaves room for
  ['a destination of 4,075 bytes', `/drop/files/${'abcdefg/'.repeat(507)}${'x'.repeat(8)}`, 'BAD_PATH'],
  ['12 KiB of encoded dots', `/drop/files/${'%2e%2e/'.repeat(1800)}@`, 'BAD_PATH'],
  ["a target over node's 16 KiB header limit", `/drop/files/${'a/'.repeat(9000)}@`, '431'],
  // empty segments, trailing slash
  ['an empty segment', '/drop/files/a//@', 'BAD_PATH'],
  ['a trailing slash', '/drop/files/@/', 'BAD_PATH'],
  ['the route and a slash, no name', '/drop/files/', 'BAD_PATH'],
  ['the route itself', '/drop/files', 'BAD_PATH'],
  // control characters
  ['%01', '/drop/files/@%01', 'BAD_PATH'],
  ['%1b (an ANSI escape)', '/drop/files/%1b[2J@', 'BAD_PATH'],
  ['%7f DEL', '/drop/files/@%7f', 'BAD_PATH'],
  ['%0d%0a (header and log injection)', '/drop/files/@%0d%0aX-Injected:%20yes', 'BAD_PATH'],
  ['%c2%85 NEL (a C1 control)', '/drop/files/@%c2%85', 'BAD_PATH'],
  ['%E2%80%AE right-to-left override', '/drop/files/@%E2%80%AEgpj.exe', 'BAD_PATH'],
  ['%E2%80%8B zero-width space', '/drop/files/a%E2%80%8B@', 'BAD_PATH'],
  ['%EF%BB%BF byte-order mark', '/drop/files/%EF%BB%BF@', 'BAD_PATH'],
  ['a raw tab', '/drop/files/a\t@', '400'],
  ['a raw DEL', '/drop/files/a\x7f@', '400'],
  ['a raw ESC', '/drop/files/a\x1b@', '400'],
  // malformed escapes
  ['a lone %', '/drop/files/@%', 'BAD_PATH'],
  ['a truncated %2', '/drop/files/@%2', 'BAD_PATH'],
  ['%zz', '/drop/files/%zz@', 'BAD_PATH'],
  ['%%2e%2e', '/drop/files/%%2e%2e/@', 'BAD_PATH'],
  ['IIS-style %u002e', '/drop/files/%u002e%u002e/@', 'BAD_PATH'],
  // around the route
  ['a raw # fragment', '/drop/files/a#/../../@', 'BAD_PATH'],
  ['the traversal in the query string', '/drop/files/@?/../../../etc', '/srv/files/@'],
  ['an absolute-form target with ..', 'http://127.0.0.1/drop/files/a/../../@', 'BAD_PATH'],
  ['%2f glued to the route', '/drop/files%2f..%2fsecret/@', 'NOT_FOUND'],
  ['a . inside the route', '/drop/./files/@', 'NOT_FOUND'],
  ['a leading //', '//drop/files/@', 'NOT_FOUND'],
];

describe('hostile paths', () => {
  const agent = sharedAgent();
  const counts = tally('hostile paths');
  const table = rows.map(([label, target, outcome], i): [string, string, Outcome] => {
    const name = `${MARKER}-${i}`;
    return [label, target.replaceAll('@', name), outcome.replaceAll('@', name) as Outcome];
  });

  it.each(table)('%s', async (_label, target, outcome) => {
    const t = agent();
    counts.tried += 1;
    const { answer } = await expectTasks(t, lands(outcome) ? 1 : 0, () =>
      exchange(t.url, rawRequest('PUT', target, { authorization: `Bearer ${TOKEN}`, 'content-length': 7 }, 'payload')),
    );
    expectOutcome(answer, outcome);
    if (!lands(outcome)) return void (counts.refused += 1);
    await waitLanded(t, outcome, 'payload');
    counts.landed += 1;
  });

  it('wrote nothing outside the routes\u2019 dests', async () => {
    await expectConfined(agent(), counts);
    expect(counts.tried).toBe(rows.length);
  });
});

// The same names through every way in (SPEC §9: HTTP clients and anyone who can write
// into a watched folder are untrusted): a URL path, a multipart filename, an X-File-Path
// header and a watched file's name are refused alike, and a watched file that is
// refused stays in its folder, logged, with nothing landed.
const everyWay: [string, string][] = [
  ['a decomposed é (NFD)', 'cafe\u0301-@'],
  ['a soft hyphen', 'pay\u00adroll-@'],
  ['a zero-width joiner', 'a\u200d@'],
  ['a right-to-left override', '@\u202egpj.exe'],
  ['a noncharacter U+FFFE', '@\ufffe'],
  ['the replacement character U+FFFD', 'a\ufffd@'],
  ['a directory named with one space', ' /@'],
  ['a directory named with one ideographic space', '\u3000/@'],
  ['a big solidus', 'a\u29f8@'],
  ['a set minus', 'a\u2216@'],
];

describe('one name policy at every way in', () => {
  // The watched folder must exist before the agent starts: this hook is registered
  // first, so it runs first, and the getter is read when sharedAgent's hook starts it.
  let watched = '';
  beforeAll(async () => {
    watched = await mkdtemp(path.join(tmpdir(), 'stevedore-hostile-watch-'));
  });
  afterAll(() => rm(watched, { recursive: true, force: true }));
  const agent = sharedAgent({
    http: '  legacy:\n    - { target: box, path_prefix: /srv/files/legacy }',
    get extra() {
      return `watch:\n  - { name: w, path: ${JSON.stringify(watched)}, target: box, dest: /srv/files/watched, settle: 100ms }`;
    },
  });
  const counts = tally('one name policy', { tried: 'names tried four ways', refused: 'refused every way' });

  const multipart = (filename: string) => {
    const boundary = 'one-policy';
    const body = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="f"; filename="${filename}"\r\n\r\npayload\r\n--${boundary}--\r\n`, 'utf8');
    return rawRequest('POST', '/drop/files/multipart', { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': body.length }, body);
  };
  const urlPath = (rel: string) => `/drop/files/url/${rel.split('/').map(encodeURIComponent).join('/')}`;

  it.each(everyWay.map(([label, rel], i) => [label, rel.replaceAll('@', `${MARKER}-name-${i}`)]))('%s', async (_label, rel) => {
    const t = agent();
    counts.tried += 1;
    const requests = [
      rawRequest('PUT', urlPath(rel), { 'content-length': 7 }, 'payload'),
      multipart(rel),
      // rawRequest writes the head as UTF-8: these are the bytes a client sends.
      rawRequest('POST', '/upload', { 'x-container-name': 'box', 'x-file-path': `/srv/files/legacy/${rel}`, 'content-length': 7 }, 'payload'),
    ];
    for (const request of requests) {
      const { answer } = await expectTasks(t, 0, () => exchange(t.url, request));
      expectOutcome(answer, 'BAD_PATH');
    }
    const file = path.join(watched, rel);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, 'payload');
    await waitFor(() => t.logs.some((line) => line.msg === 'skipping a file whose name cannot be a container path' && line.path === file), { what: `the watch to refuse ${JSON.stringify(rel)}` });
    expect(await readFile(file, 'utf8')).toBe('payload');
    counts.refused += 1;
  });

  it('wrote nothing outside the routes\u2019 dests, and nothing from the watch', async () => {
    const t = agent();
    await expectConfined(t, counts);
    expect(await readdir(path.join(t.root, 'srv/files')).catch(() => [])).not.toContain('watched');
    expect(counts.tried).toBe(everyWay.length);
  });
});
