import { posix } from 'node:path';
import { describe, it, expect } from 'vitest';
import { StevedoreError } from '../../src/errors.js';
import {
  MAX_DEST_BYTES,
  MAX_PATH_BYTES,
  MAX_SEGMENT_BYTES,
  checkAbsolutePath,
  checkRelativePath,
  decodeHeaderPath,
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

// One policy for every name, whichever way it came (names.ts): each row is refused as a
// URL path (percent-encoded), a relative path (a multipart filename, a watched file's
// name), inside an absolute path (a config dest) and as an X-File-Path header (its
// UTF-8 bytes, as node hands them over in latin1), each time with the same reason.
const refusedNames: [string, string, RegExp][] = [
  ['decomposed é (NFD, as macOS writes it)', 'caf\u0065\u0301.txt', /is not in Unicode NFC/],
  ['decomposed Hangul', '\u1112\u1161\u11ab.txt', /is not in Unicode NFC/],
  ['ANGSTROM SIGN (NFC turns it into Å)', '\u212b.txt', /is not in Unicode NFC/],
  ['soft hyphen', 'pay\u00adroll.txt', /invisible format character U\+00AD/],
  ['word joiner', 'a\u2060b', /invisible format character U\+2060/],
  ['zero-width joiner', 'a\u200db', /invisible format character U\+200D/],
  ['invisible times', 'a\u2062b', /invisible format character U\+2062/],
  ['BOM', '\ufeffa', /invisible format character U\+FEFF/],
  ['Arabic letter mark', 'a\u061cb', /bidi control U\+061C/],
  ['left-to-right isolate', '\u2066a', /bidi control U\+2066/],
  ['interlinear annotation anchor', 'a\ufff9b', /invisible format character U\+FFF9/],
  ['tag letter A', 'a\u{e0041}', /invisible format character U\+E0041/],
  ['noncharacter U+FFFE', 'a\ufffe', /noncharacter U\+FFFE/],
  ['noncharacter U+FFFF', 'a\uffff', /noncharacter U\+FFFF/],
  ['noncharacter U+FDD0', '\ufdd0a', /noncharacter U\+FDD0/],
  ['noncharacter U+FDEF', 'a\ufdef', /noncharacter U\+FDEF/],
  ['noncharacter U+1FFFE', 'a\u{1fffe}', /noncharacter U\+1FFFE/],
  ['noncharacter U+10FFFF', 'a\u{10ffff}', /noncharacter U\+10FFFF/],
  ['replacement character (a name that was not UTF-8)', 'a\ufffd.txt', /replacement character U\+FFFD/],
  ['a name of one space', ' ', /nothing visible/],
  ['a name of spaces', '   ', /nothing visible/],
  ['a name of no-break spaces', '\u00a0\u00a0', /nothing visible/],
  ['a name of one ideographic space', '\u3000', /nothing visible/],
  ['a name of one Hangul filler', '\u3164', /nothing visible/],
  ['a name of one variation selector', '\ufe0f', /nothing visible/],
  ['fraction slash', 'a\u2044b', /slash look-alike U\+2044/],
  ['division slash', 'a\u2215b', /slash look-alike U\+2215/],
  ['big solidus', 'a\u29f8b', /slash look-alike U\+29F8/],
  ['box-drawing diagonal', 'a\u2571b', /slash look-alike U\+2571/],
  ['mathematical rising diagonal', 'a\u27cbb', /slash look-alike U\+27CB/],
  ['set minus (a backslash look-alike)', 'a\u2216b', /slash look-alike U\+2216/],
  ['reverse solidus operator', 'a\u29f5b', /slash look-alike U\+29F5/],
  ['combining long solidus overlay', 'a\u0338b', /slash look-alike U\+0338/],
  ['fullwidth solidus', 'a\uff0fb', /normalizes to a name containing a slash/],
  ['small reverse solidus', 'a\ufe68b', /normalizes to a name containing a slash/],
  ['NEL', 'a\u0085b', /control character U\+0085/],
  ['paragraph separator', 'a\u2029b', /line separator U\+2029/],
];

// Odd but visible, composed names: they land as they are.
const acceptedNames = [
  'a b.txt',
  ' leading and trailing ',
  'café.txt',
  '\u00c5.txt',
  '한글.txt',
  '日本\u3000語.txt',
  'x\u00a0y',
  '😀.png',
  '..data',
  '\u2764\ufe0f.txt',
  '\u0915\u094d\u0937', // क्ष: a virama sequence, composed already
];

const latin1 = (text: string) => Buffer.from(text, 'utf8').toString('latin1');

describe('one name policy, every way in', () => {
  it(`covers every kind of name it refuses (${refusedNames.length} rows)`, () => {
    expect(refusedNames.length).toBeGreaterThanOrEqual(30);
  });

  const rows = refusedNames.map(([label, name, reason]) => [label, name, reason] as const);
  it.each(rows)('refuses %s the same way everywhere', (_label, name, reason) => {
    expect(badPath(() => decodeUrlPath(`dir/${encodeURIComponent(name)}`)).message).toMatch(reason);
    expect(badPath(() => checkRelativePath(`dir/${name}`)).message).toMatch(reason);
    expect(badPath(() => checkAbsolutePath(`/srv/${name}`)).message).toMatch(reason);
    expect(badPath(() => decodeHeaderPath(latin1(`/srv/${name}`))).message).toMatch(reason);
  });

  it.each(acceptedNames.map((name) => [JSON.stringify(name), name]))('accepts %s everywhere, unchanged', (_t, name) => {
    expect(decodeUrlPath(`dir/${encodeURIComponent(name)}`)).toBe(`dir/${name}`);
    expect(checkRelativePath(`dir/${name}`)).toBe(`dir/${name}`);
    expect(checkAbsolutePath(`/srv/${name}`)).toBe(`/srv/${name}`);
    expect(decodeHeaderPath(latin1(`/srv/${name}`))).toBe(`/srv/${name}`);
  });
});

describe('decodeHeaderPath (X-File-Path)', () => {
  const bytes = (...values: number[]) => Buffer.from(values).toString('latin1');
  it.each([
    ['a lone continuation byte', `/srv/${bytes(0x80)}`, /not valid UTF-8/],
    ['latin1 é (not UTF-8)', `/srv/caf${bytes(0xe9)}`, /not valid UTF-8/],
    ['overlong "." (C0 AE)', `/srv/${bytes(0xc0, 0xae, 0xc0, 0xae)}/x`, /not valid UTF-8/],
    ['overlong "/" (C0 AF)', `/srv${bytes(0xc0, 0xaf)}etc`, /not valid UTF-8/],
    ['a UTF-16 surrogate (ED A0 80)', `/srv/${bytes(0xed, 0xa0, 0x80)}`, /not valid UTF-8/],
    ['a truncated sequence', `/srv/${bytes(0xe2, 0x82)}`, /not valid UTF-8/],
    ['a trailing slash', '/srv/dir/', /ends with "\/"/],
    ['the root', '/', /ends with "\/"/],
    ['a BOM before the path (kept, then refused)', latin1('\ufeff/srv/a'), /must be absolute/],
    ['relative', 'srv/a', /must be absolute/],
    ['..', '/srv/../etc/passwd', /"\.\."/],
    ['an empty segment', '/srv//a', /empty/],
  ])('refuses %s', (_label, header, reason) => {
    expect(badPath(() => decodeHeaderPath(header)).message).toMatch(reason);
  });

  it('decodes UTF-8 sent as latin1 bytes', () => {
    expect(decodeHeaderPath(latin1('/var/legacy/café ☕.txt'))).toBe('/var/legacy/café ☕.txt');
  });
});

describe('the longest destination (MAX_DEST_BYTES)', () => {
  // /srv/dest/ + segments of 250 bytes, then a tail that makes the total `total` bytes.
  const destOf = (total: number) => {
    const rel = Array.from({ length: 17 }, () => 'x'.repeat(250)).join('/');
    const full = `/srv/dest/${rel}`;
    return full.slice(0, total);
  };

  it('leaves room for the 21-byte staging directory under PATH_MAX', () => {
    expect(MAX_DEST_BYTES).toBe(4074);
  });

  it('joins a destination of exactly MAX_DEST_BYTES and refuses one byte more', () => {
    const fits = destOf(MAX_DEST_BYTES);
    const rel = fits.slice('/srv/dest/'.length);
    expect(Buffer.byteLength(fits)).toBe(MAX_DEST_BYTES);
    expect(joinDest('/srv/dest', rel)).toBe(fits);
    const over = `${rel}z`;
    expect(badPath(() => joinDest('/srv/dest', over)).message).toMatch(/destination is 4075 bytes, over the 4074-byte limit/);
  });

  it('holds for an X-File-Path too', () => {
    expect(decodeHeaderPath(destOf(MAX_DEST_BYTES))).toBe(destOf(MAX_DEST_BYTES));
    expect(badPath(() => decodeHeaderPath(`${destOf(MAX_DEST_BYTES)}z`)).message).toMatch(/4075 bytes/);
  });
});
