import { posix } from 'node:path';
import { describe, it, expect } from 'vitest';
import { StevedoreError } from '../../src/errors.js';
import {
  MAX_PATH_BYTES,
  MAX_SEGMENT_BYTES,
  checkAbsolutePath,
  checkRelativePath,
  decodeUrlPath,
  isUnder,
  joinDest,
} from '../../src/ingest/paths.js';

// Test titles stay readable when an input is kilobytes long.
const short = (s: string): string => {
  const shown = JSON.stringify(s);
  return shown.length > 40 ? `${shown.slice(0, 30)}… (${s.length} chars)` : shown;
};

// Runs `fn`, requires it to throw a BAD_PATH StevedoreError (never a raw
// URIError or TypeError), and hands the error back for further checks.
function badPath(fn: () => unknown): StevedoreError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(StevedoreError);
  const error = caught as StevedoreError;
  expect(error.code).toBe('BAD_PATH');
  expect(error.status).toBe(400);
  expect(error.message.length).toBeGreaterThan(0);
  return error;
}

const seg255 = 'x'.repeat(MAX_SEGMENT_BYTES);
// 16 × 255 + 15 slashes = 4095 bytes.
const body4095 = Array.from({ length: 16 }, () => seg255).join('/');
// 16 × 254 + 16 slashes + 16 = exactly 4096 bytes.
const rel4096 = [...Array.from({ length: 16 }, () => 'x'.repeat(254)), 'y'.repeat(16)].join('/');

// [label, raw URL path tail]
const hostileUrlPaths: [string, string][] = [
  ['empty', ''],
  ['just a slash', '/'],
  ['raw ..', '..'],
  ['raw /..', '/..'],
  ['raw .', '.'],
  ['.. in the middle', 'a/../b'],
  ['. in the middle', 'a/./b'],
  ['%2e%2e', '%2e%2e'],
  ['%2E%2E', '%2E%2E'],
  ['%2e%2E', '%2e%2E'],
  ['%2E%2e', '%2E%2e'],
  ['.%2e', '.%2e'],
  ['%2e.', '%2e.'],
  ['.%2E', '.%2E'],
  ['%2E.', '%2E.'],
  ['%2e alone', '%2e'],
  ['encoded .. mid-path', 'a/%2e%2e/b'],
  ['encoded ../../etc/passwd', '%2e%2e/%2e%2e/etc/passwd'],
  ['encoded . mid-path', 'a/%2E/b'],
  ['double-encoded then single-encoded ..', '%252e%252e/%2e%2e'],
  ['%2f alone', '%2f'],
  ['%2F alone', '%2F'],
  ['encoded slash inside a name', 'a%2fb'],
  ['..%2fetc', '..%2fetc'],
  ['fully encoded ../../etc/passwd', '%2e%2e%2f%2e%2e%2fetc%2fpasswd'],
  ['encoded /etc/passwd', '%2fetc%2fpasswd'],
  ['leading slash then %2f', '/%2fetc'],
  ['%5c', '%5c'],
  ['%5C', '%5C'],
  ['encoded backslash traversal', '..%5c..%5cwindows'],
  ['raw backslash in a name', 'a\\b'],
  ['raw backslash traversal', '..\\..\\etc'],
  ['lone raw backslash', '\\'],
  ['overlong . . (%c0%ae%c0%ae)', '%c0%ae%c0%ae'],
  ['overlong . (%c0%ae)', '%c0%ae'],
  ['3-byte overlong . (%e0%80%ae)', '%e0%80%ae'],
  ['overlong / (%c0%af)', '%c0%af'],
  ['3-byte overlong / (%e0%80%af)', '%e0%80%af'],
  ['overlong \\ (%c1%9c)', '%c1%9c'],
  ['encoded surrogate half', '%ed%a0%80'],
  ['invalid byte %ff', '%ff'],
  ['bare %', '%'],
  ['%zz', '%zz'],
  ['truncated sequence %e0%80', '%e0%80'],
  ['truncated escape a%2', 'a%2'],
  ['lead byte then ASCII %c0%2e', '%c0%2e'],
  ['%%32%65', '%%32%65'],
  ['raw NUL', 'a\u0000b'],
  ['%00', 'a%00b'],
  ['NUL extension trick', 'file.txt%00.jpg'],
  ['%0a newline', '%0a'],
  ['raw newline', 'a\nb'],
  ['CRLF', 'a%0d%0ab'],
  ['tab', 'a%09b'],
  ['unit separator 0x1f', '%1f'],
  ['DEL', 'a%7f'],
  ['C1 NEL (%c2%85)', 'a%c2%85'],
  ['C1 CSI (%c2%9b)', '%c2%9b31m'],
  ['raw C1 CSI', 'a\u009bb'],
  ['//etc/passwd', '//etc/passwd'],
  ['///etc', '///etc'],
  ['fullwidth ..', '\uff0e\uff0e'],
  ['encoded fullwidth ..', '%ef%bc%8e%ef%bc%8e'],
  ['fullwidth solidus', 'a\uff0fb'],
  ['encoded fullwidth solidus', '%ef%bc%8f'],
  ['fullwidth reverse solidus', 'a\uff3cb'],
  ['one-dot leader twice', '\u2024\u2024'],
  ['one-dot leader once', '\u2024'],
  ['two-dot leader', '\u2025'],
  ['small full stops', '\ufe52\ufe52'],
  ['division slash', 'a\u2215b'],
  ['encoded division slash', 'a%e2%88%95b'],
  ['fraction slash', 'a\u2044b'],
  ['4 KiB segment', 'x'.repeat(4096)],
  ['256-byte segment', 'x'.repeat(256)],
  ['256-byte segment of 2-byte chars', 'é'.repeat(128)],
  ['256-byte segment, percent-encoded', '%41'.repeat(256)],
  ['total 4097 bytes', `${body4095}/a`],
  ['total well over 4096 bytes', Array.from({ length: 17 }, () => 'x'.repeat(250)).join('/')],
  ['raw length far over the limit', '%41'.repeat(5000)],
  ['trailing slash', 'a/'],
  ['trailing slash, deeper', 'a/b/'],
  ['empty segment', 'a//b'],
  ['leading slash and trailing empty segments', '/a//'],
  ['bidi override (RLO)', 'evil\u202etxt.exe'],
  ['encoded RLO', 'evil%e2%80%aetxt.exe'],
  ['bidi isolate (LRI)', '\u2066a'],
  ['right-to-left mark', 'a\u200f'],
  ['BOM', '\ufeffa'],
  ['encoded BOM', '%ef%bb%bfa'],
  ['lone surrogate', 'a\ud800'],
  ['line separator (log forging)', 'a\u2028b'],
  ['encoded paragraph separator', 'a%e2%80%a9b'],
  ['zero-width space', 'a\u200bb'],
  ['unstripped query string', 'a.txt?x=1'],
  ['unstripped fragment', 'a.txt#frag'],
];

// [raw URL path tail, decoded relative path]
const acceptedUrlPaths: [string, string][] = [
  ['a.txt', 'a.txt'],
  ['/a.txt', 'a.txt'],
  ['a/b%20c.txt', 'a/b c.txt'],
  ['sub/dir/name.tar.gz', 'sub/dir/name.tar.gz'],
  ['%252e%252e', '%2e%2e'],
  ['%252e%252e/%252fetc', '%2e%2e/%2fetc'],
  ['%25', '%'],
  ['...', '...'],
  ['..a', '..a'],
  ['a..', 'a..'],
  ['.hidden', '.hidden'],
  ['.%2ehidden', '..hidden'],
  ['été/naïve.txt', 'été/naïve.txt'],
  ['%C3%A9t%C3%A9/na%C3%AFve.txt', 'été/naïve.txt'],
  ['日本語/ファイル.txt', '日本語/ファイル.txt'],
  ['%E6%97%A5%E6%9C%AC.txt', '日本.txt'],
  ['😀.png', '😀.png'],
  ['%F0%9F%98%80.png', '😀.png'],
  ['a+b.txt', 'a+b.txt'],
  ['a%2Bb', 'a+b'],
  ['%3F%23.txt', '?#.txt'],
  ['\u2026', '\u2026'],
  ['\ufb01le.txt', '\ufb01le.txt'],
  ['\uff21.txt', '\uff21.txt'],
  [seg255, seg255],
  ['é'.repeat(127), 'é'.repeat(127)],
  ['%41'.repeat(255), 'A'.repeat(255)],
  [rel4096, rel4096],
];

describe('fixtures', () => {
  it('sit exactly on the limits', () => {
    expect(Buffer.byteLength(rel4096)).toBe(MAX_PATH_BYTES);
    expect(Buffer.byteLength(`/${body4095}`)).toBe(MAX_PATH_BYTES);
    expect(Buffer.byteLength(seg255)).toBe(MAX_SEGMENT_BYTES);
  });
});

describe('decodeUrlPath', () => {
  it(`has a big hostile table (${hostileUrlPaths.length} cases)`, () => {
    expect(hostileUrlPaths.length).toBeGreaterThanOrEqual(50);
  });

  it.each(hostileUrlPaths)('rejects %s', (_label, raw) => {
    badPath(() => decodeUrlPath(raw));
    expect(() => decodeUrlPath(raw)).toThrowError(expect.objectContaining({ code: 'BAD_PATH' }));
  });

  const acceptedRows = acceptedUrlPaths.map(([raw, out]) => [short(raw), raw, out] as const);
  it.each(acceptedRows)('accepts %s', (_t, raw, expected) => {
    expect(decodeUrlPath(raw)).toBe(expected);
  });

  const messages: [string, RegExp][] = [
    ['a/..', /^path segment 2 is "\.\.": parent references are not allowed$/],
    ['%2e%2e', /segment 1 is "\.\."/],
    ['a/%zz', /segment 2 has malformed percent-encoding/],
    ['a%2fb', /segment 1 contains an encoded "\/"/],
    ['a%00', /control character U\+0000/],
    ['a/b%5c', /segment 2 contains a backslash/],
    ['a/', /trailing "\/"/],
    ['a//b', /segment 2 is empty/],
    ['//etc/passwd', /must be relative/],
    ['x'.repeat(256), /256 bytes, over the 255-byte/],
    ['\uff0e\uff0e', /normalizes to "\.\."/],
    ['x\u202e', /bidi control U\+202E/],
  ];
  const messageRows = messages.map(([raw, re]) => [short(raw), raw, re] as const);
  it.each(messageRows)('names the problem for %s', (_t, raw, message) => {
    expect(badPath(() => decodeUrlPath(raw)).message).toMatch(message);
  });

  it('keeps a huge hostile path out of error details', () => {
    const error = badPath(() => decodeUrlPath('%41'.repeat(5000)));
    expect(String(error.details.path).length).toBeLessThan(300);
  });
});

describe('checkRelativePath', () => {
  it.each([
    'a',
    'sub/dir/name.txt',
    'été.txt',
    '%2e%2e',
    '..a',
    'a?b#c',
    seg255,
    rel4096,
  ].map((rel) => [short(rel), rel]))('accepts %s unchanged', (_t, rel) => {
    expect(checkRelativePath(rel)).toBe(rel);
  });

  it.each([
    ['empty', ''],
    ['absolute', '/a'],
    ['//', '//etc/passwd'],
    ['trailing slash', 'a/'],
    ['empty segment', 'a//b'],
    ['..', '..'],
    ['.. mid-path', 'a/../b'],
    ['.', '.'],
    ['backslash', 'a\\b'],
    ['NUL', 'a\u0000b'],
    ['C1', 'a\u0085'],
    ['RLO', '\u202eab'],
    ['256-byte segment', 'x'.repeat(256)],
    ['over 4096 bytes', `${body4095}/a`],
    ['fullwidth ..', '\uff0e\uff0e'],
    ['division slash', 'a\u2215b'],
    ['lone surrogate', '\udc00'],
  ])('rejects %s', (_label, rel) => {
    badPath(() => checkRelativePath(rel));
  });
});

describe('checkAbsolutePath', () => {
  const accepted: [string, string][] = [
    ['/', '/'],
    ['/a', '/a'],
    ['/a/', '/a'],
    ['/var/www/html', '/var/www/html'],
    ['/var/www/html/', '/var/www/html'],
    ['/srv/été', '/srv/été'],
    [`/${body4095}`, `/${body4095}`],
  ];
  const rows = accepted.map(([path, out]) => [short(path), path, out] as const);
  it.each(rows)('accepts %s', (_t, path, expected) => {
    expect(checkAbsolutePath(path)).toBe(expected);
  });

  it.each([
    ['empty', ''],
    ['relative', 'a'],
    ['relative, deeper', 'var/www'],
    ['leading space', ' /a'],
    ['//', '//'],
    ['//etc', '//etc'],
    ['two trailing slashes', '/a//'],
    ['empty segment', '/a//b'],
    ['/..', '/..'],
    ['.. at the end', '/a/..'],
    ['. mid-path', '/a/./b'],
    ['backslash', '/a\\b'],
    ['NUL', '/a\u0000'],
    ['256-byte segment', `/${'x'.repeat(256)}`],
    ['over 4096 bytes', `/${body4095}/a`],
    ['fullwidth ..', '/a/\uff0e\uff0e'],
    ['BOM', '/\ufeffa'],
  ])('rejects %s', (_label, path) => {
    badPath(() => checkAbsolutePath(path));
  });
});

describe('joinDest', () => {
  it.each([
    ['/srv/dest', 'a.txt', '/srv/dest/a.txt'],
    ['/srv/dest/', 'a/b', '/srv/dest/a/b'],
    ['/', 'etc/x', '/etc/x'],
    ['/srv/dest', '%2e%2e', '/srv/dest/%2e%2e'],
  ])('joins %j and %j', (dest, rel, expected) => {
    expect(joinDest(dest, rel)).toBe(expected);
  });

  it.each([
    ['relative dest', 'srv', 'a'],
    ['dest with ..', '/srv/../etc', 'a'],
    ['rel with ..', '/srv', '../a'],
    ['absolute rel', '/srv', '/etc/passwd'],
    ['empty rel', '/srv', ''],
    ['rel with trailing slash', '/srv', 'a/'],
    ['joined over 4096 bytes', `/${body4095}`, 'a'],
    ['rel legal alone, joined over 4096 bytes', '/srv/dest', rel4096],
  ])('rejects %s', (_label, dest, rel) => {
    badPath(() => joinDest(dest, rel));
  });
});

describe('isUnder', () => {
  it.each([
    ['/var/www', '/var/www', true],
    ['/var/www/a', '/var/www', true],
    ['/var/www/a/b', '/var/www', true],
    ['/var/www/', '/var/www', true],
    ['/var/www', '/var/www/', true],
    ['/var/www2', '/var/www', false],
    ['/var/www2/a', '/var/www', false],
    ['/var/www-old', '/var/www', false],
    ['/var/www.bak', '/var/www', false],
    ['/var/ww', '/var/www', false],
    ['/var', '/var/www', false],
    ['/etc/passwd', '/', true],
    ['/', '/', true],
    ['/', '/var', false],
  ])('isUnder(%j, %j) is %s', (path, prefix, expected) => {
    expect(isUnder(path, prefix)).toBe(expected);
  });

  it.each([
    ['/var/www/../etc', '/var/www'],
    ['var/www', '/var'],
    ['/var/www', 'var'],
  ])('refuses to answer for unsafe input %j under %j', (path, prefix) => {
    badPath(() => isUnder(path, prefix));
  });
});

describe('property: accepted paths stay inside dest', () => {
  // rel4096 is a legal relative path, but under /srv/dest it would exceed
  // MAX_PATH_BYTES, so joinDest rightly refuses it (tested in joinDest above).
  const accepted = [
    ...acceptedUrlPaths.map(([raw]) => decodeUrlPath(raw)),
    'sub/dir/name.txt',
    '%2e%2e',
  ].filter((rel) => rel !== rel4096);

  const rows = accepted.map((rel) => [short(rel), rel] as const);
  it.each(rows)('%s joined to /srv/dest is under it and normal', (_t, rel) => {
    const joined = joinDest('/srv/dest', rel);
    expect(joined).toBe(`/srv/dest/${rel}`);
    expect(isUnder(joined, '/srv/dest')).toBe(true);
    expect(posix.normalize(joined)).toBe(joined);
  });
});
