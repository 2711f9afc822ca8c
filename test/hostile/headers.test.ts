// Hostile headers to one agent: sizes node refuses itself (431), framing headers that
// contradict each other (400 from node's parser), and every shape of a bad bearer
// token on the token route (SPEC §3: 401 UNAUTHORIZED). Then the token comparison
// itself: constant-time over SHA-256 digests, so lengths never matter (no timing here).
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { bearerToken, tokenAllows } from '../../src/ingest/auth.js';
import { TOKEN, expectConfined, expectOutcome, expectTasks, exchange, lands, rawRequest, sharedAgent, tally, waitLanded, type Outcome } from './harness.js';

type Fields = Parameters<typeof rawRequest>[2];
const auth = (...values: string[]): Fields => ({ authorization: values });

// Every row PUTs "payload" (Content-Length 7 unless the row sets it) to /drop/secret/h<row>.txt.
// [label, header fields, outcome]
const rows: [string, Fields, Outcome][] = [
  ['a 64 KiB header', { ...auth(`Bearer ${TOKEN}`), 'x-pad': 'p'.repeat(64 * 1024) }, '431'],
  ['20,000 small header lines', { ...auth(`Bearer ${TOKEN}`), 'x-many': Array.from({ length: 20_000 }, (_, i) => i) }, '431'],
  ['two Content-Lengths with different values', { ...auth(`Bearer ${TOKEN}`), 'content-length': [7, 3] }, '400'],
  ['two Content-Lengths with the same value', { ...auth(`Bearer ${TOKEN}`), 'content-length': [7, 7] }, '400'],
  ['a Content-Length list "7, 3"', { ...auth(`Bearer ${TOKEN}`), 'content-length': '7, 3' }, '400'],
  ['a Content-Length "+7"', { ...auth(`Bearer ${TOKEN}`), 'content-length': '+7' }, '400'],
  ['no Host header in HTTP/1.1', { ...auth(`Bearer ${TOKEN}`), host: [] }, '400'],
  ['a NUL in a header value', auth(`Bearer ${TOKEN}\0`), '400'],
  ['a space before the colon', { 'authorization ': `Bearer ${TOKEN}` }, '400'],
  ['an obsolete line folding of the token', auth(`Bearer\r\n ${TOKEN}`), '400'],
  // bad tokens
  ['no Authorization at all', {}, 'UNAUTHORIZED'],
  ['an empty Authorization', auth(''), 'UNAUTHORIZED'],
  ['"Bearer" and no token', auth('Bearer'), 'UNAUTHORIZED'],
  ['a wrong token', auth('Bearer wrong-token'), 'UNAUTHORIZED'],
  ['a prefix of the right token', auth('Bearer s3cret'), 'UNAUTHORIZED'],
  ['the right token and one more character', auth(`Bearer ${TOKEN}x`), 'UNAUTHORIZED'],
  ['the right token with a space inside', auth('Bearer s3cret -token'), 'UNAUTHORIZED'],
  ['the right token and a second word', auth(`Bearer ${TOKEN} extra`), 'UNAUTHORIZED'],
  ['a tab between scheme and token', auth(`Bearer\t${TOKEN}`), 'UNAUTHORIZED'],
  ['the right token without the scheme', auth(TOKEN), 'UNAUTHORIZED'],
  ['the right token as Basic credentials', auth(`Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`), 'UNAUTHORIZED'],
  ['a token with non-ASCII bytes', auth('Bearer s3cret-tok\u00e9n'), 'UNAUTHORIZED'],
  ['an 8 KiB token', auth(`Bearer ${'t'.repeat(8 * 1024)}`), 'UNAUTHORIZED'],
  ['a 20 KiB token', auth(`Bearer ${'t'.repeat(20 * 1024)}`), '431'],
  // node keeps the first of repeated Authorization fields and drops the rest, where a
  // proxy in front may have checked the other one: a repeated field is refused
  ['a wrong Authorization, then the right one', auth('Bearer wrong-token', `Bearer ${TOKEN}`), 'BAD_REQUEST'],
  ['an empty Authorization, then the right one', auth('', `Bearer ${TOKEN}`), 'BAD_REQUEST'],
  ['the right Authorization, then a wrong one', auth(`Bearer ${TOKEN}`, 'Bearer wrong-token'), 'BAD_REQUEST'],
  // RFC 9110 §11.4: credentials = auth-scheme [ 1*SP token68 ]; node trims the field value
  ['two spaces between scheme and token', auth(`Bearer  ${TOKEN}`), '/srv/secret/h@.txt'],
  ['spaces around the field value', auth(`   Bearer ${TOKEN}   `), '/srv/secret/h@.txt'],
];

describe('hostile headers (the token route)', () => {
  const agent = sharedAgent();
  const counts = tally('hostile headers');

  it.each(rows.map(([label, fields, outcome], i) => [label, fields, outcome.replace('@', String(i)) as Outcome, i] as const))('%s', async (_label, fields, outcome, i) => {
    const t = agent();
    counts.tried += 1;
    const request = rawRequest('PUT', `/drop/secret/h${i}.txt`, { 'content-length': 7, ...fields }, 'payload');
    const { answer } = await expectTasks(t, lands(outcome) ? 1 : 0, () => exchange(t.url, request));
    expectOutcome(answer, outcome);
    if (outcome === 'UNAUTHORIZED') expect(answer?.headers['www-authenticate']).toBe('Bearer');
    if (!lands(outcome)) return void (counts.refused += 1);
    await waitLanded(t, outcome, 'payload');
    counts.landed += 1;
  });

  it('wrote nothing outside the routes\u2019 dests', async () => {
    await expectConfined(agent(), counts);
    expect(counts.refused + counts.landed).toBe(rows.length);
  });
});

describe('the token comparison (src/ingest/auth.ts)', () => {
  const presented: [string, string | undefined][] = [
    ['nothing', undefined],
    ['an empty token', ''],
    ['one character', 's'],
    ['a prefix', TOKEN.slice(0, -1)],
    ['one character more', `${TOKEN}-`],
    ['the right length, one character off', `${TOKEN.slice(0, -1)}N`],
    ['100 KiB', 'x'.repeat(100 * 1024)],
    ['non-ASCII', 's3cret-tok\u00e9n\u{1f512}'],
  ];

  it.each(presented)('refuses %s without throwing, whatever its length', (_label, token) => {
    expect(() => tokenAllows(TOKEN, token)).not.toThrow();
    expect(tokenAllows(TOKEN, token)).toBe(false);
  });

  it('allows the right token, and anything where no token is required', () => {
    expect(tokenAllows(TOKEN, TOKEN)).toBe(true);
    expect(tokenAllows(undefined, undefined)).toBe(true);
    expect(tokenAllows(undefined, 'anything')).toBe(true);
    expect(bearerToken({ authorization: `bearer ${TOKEN}` })).toBe(TOKEN);
  });

  it('compares with timingSafeEqual over SHA-256 digests of both sides (never ===)', async () => {
    const source = await readFile(new URL('../../src/ingest/auth.ts', import.meta.url), 'utf8');
    expect(source).toMatch(/createHash\('sha256'\)/);
    expect(source).toMatch(/timingSafeEqual\(digest\(required\), digest\(presented \?\? ''\)\)/);
    // Besides "is a token required at all", no string comparison.
    expect(source.replace('required === undefined', '')).not.toMatch(/[!=]==?/);
  });
});
