// Hostile multipart bodies to one agent (README: a body without boundary is 400
// BAD_REQUEST; each filename is checked like a URL path; all parts or none; at most
// 1,000 files). Bodies are raw bytes, so every header and delimiter is the attacker's.
import { describe, expect, it } from 'vitest';
import { MARKER, expectConfined, expectOutcome, expectTasks, exchange, lands, rawRequest, sharedAgent, tally, waitLanded, type Outcome } from './harness.js';

const B = 'hostile-boundary';
const FORM = `multipart/form-data; boundary=${B}`;

/** A part: its raw header lines and its content. */
type Part = [head: string, content: string];
const file = (filename: string, content = 'payload'): Part => [`Content-Disposition: form-data; name="f"; filename="${filename}"`, content];
const field = (name: string, content: string): Part => [`Content-Disposition: form-data; name="${name}"`, content];

function form(parts: Part[], { end = true } = {}): Buffer {
  const body = parts.map(([head, content]) => `--${B}\r\n${head}\r\n\r\n${content}\r\n`).join('');
  return Buffer.from(`${body}${end ? `--${B}--\r\n` : ''}`, 'utf8');
}

const many = (n: number, make: (i: number) => Part) => Array.from({ length: n }, (_, i) => make(i));

// "@" in a name stands for MARKER: an escape would show by name.
// [label, Content-Type, body, outcome, tasks]
const rows: [string, string, Buffer, Outcome, number][] = [
  ['no boundary', 'multipart/form-data', form([file('a.txt')]), 'BAD_REQUEST', 0],
  ['an empty boundary', 'multipart/form-data; boundary=', form([file('a.txt')]), 'BAD_REQUEST', 0],
  ['a boundary that never appears', 'multipart/form-data; boundary=elsewhere', form([file('a.txt')]), 'BAD_REQUEST', 0],
  ['a part header line without a colon', FORM, form([['Content-Disposition form-data; name="f"; filename="@"', 'x']]), 'BAD_REQUEST', 0],
  ['a part without Content-Disposition', FORM, form([['Content-Type: text/plain', 'x']]), 'BAD_REQUEST', 0],
  ['a filename with an unterminated quote', FORM, form([['Content-Disposition: form-data; name="f"; filename="@', 'x']]), 'BAD_REQUEST', 0],
  ['a 100 KiB part header', FORM, form([[`Content-Disposition: form-data; name="f"; filename="@"\r\nX-Pad: ${'p'.repeat(100 * 1024)}`, 'x']]), 'BAD_REQUEST', 0],
  ['no closing delimiter', FORM, form([file('a.txt'), file('b.txt')], { end: false }), 'BAD_REQUEST', 0],
  ['10,000 file parts (at most 1,000)', FORM, form(many(10_000, (i) => file(`f${i}.txt`, String(i)))), 'TOO_LARGE', 0],
  ['10,000 plain fields and one file', FORM, form([...many(10_000, (i) => field(`n${i}`, 'v')), file('a.txt')]), 'TOO_LARGE', 0],
  ['a filename ../../x', FORM, form([file('ok.txt'), file('../../@')]), 'BAD_PATH', 0],
  ['a filename /etc/x', FORM, form([file('ok.txt'), file('/etc/@')]), 'BAD_PATH', 0],
  ['a filename a\\b', FORM, form([file('a\\@')]), 'BAD_PATH', 0],
  ['a Windows filename C:\\x', FORM, form([file('C:\\Windows\\@')]), 'BAD_PATH', 0],
  ["an RFC 5987 filename*=UTF-8''..%2F..%2Fx", FORM, form([[`Content-Disposition: form-data; name="f"; filename*=UTF-8''..%2F..%2F@`, 'x']]), 'BAD_PATH', 0],
  ['a filename sub/../../x', FORM, form([file('sub/../../@')]), 'BAD_PATH', 0],
  ['a filename with a NUL (busboy: a malformed part header)', FORM, form([file('@\0.txt')]), 'BAD_REQUEST', 0],
  ['a filename of 300 bytes', FORM, form([file(`${'n'.repeat(300)}`)]), 'BAD_PATH', 0],
  ['a filename of fullwidth dots \uff0e\uff0e/x', FORM, form([file('\uff0e\uff0e/@')]), 'BAD_PATH', 0],
  ['a filename %2e%2e/x is not URL-decoded: a literal name', FORM, form([file('%2e%2e/@')]), '/srv/files/up/%2e%2e/@', 1],
  ['a UTF-8 filename, as browsers send it, lands under that name', FORM, form([file('caf\u00e9-@.txt')]), '/srv/files/up/caf\u00e9-@.txt', 1],
];

describe('hostile multipart', () => {
  const agent = sharedAgent();
  const counts = tally('hostile multipart');

  it.each(rows.map(([label, ...rest]) => [label.replaceAll('@', MARKER), ...rest] as const))('%s', async (_label, type, body, outcome, tasks) => {
    const t = agent();
    counts.tried += 1;
    const bytes = Buffer.from(body.toString('latin1').replaceAll('@', MARKER), 'latin1');
    const target = outcome.replaceAll('@', MARKER) as Outcome;
    const headers = { 'content-type': type, 'content-length': bytes.length };
    const { answer } = await expectTasks(t, tasks, () => exchange(t.url, rawRequest('POST', '/drop/files/up', headers, bytes)));
    expectOutcome(answer, target);
    if (!lands(target)) return void (counts.refused += 1);
    await waitLanded(t, target, 'payload');
    counts.landed += 1;
  });

  it('wrote nothing outside the routes\u2019 dests', async () => {
    await expectConfined(agent(), counts);
    expect(counts.refused + counts.landed).toBe(rows.length);
  });
});
