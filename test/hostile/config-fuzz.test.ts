// config.example.yaml, mutated a few hundred times by a seeded PRNG (so every run
// tries the same texts): parseConfig must return a config or throw CONFIG_INVALID with
// every line as `FILE:LINE:COL: …` (SPEC §1), never any other exception.
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { StevedoreError, errorMessage } from '../../src/errors.js';

const example = readFileSync(new URL('../../config.example.yaml', import.meta.url), 'utf8');
const FILE = 'fuzz.yaml';
const MUTATIONS = 400;

/** mulberry32: small, fast, and the same sequence for the same seed. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  const int = (n: number) => Math.floor(next() * n);
  return { int, pick: <T>(items: readonly T[]): T => items[int(items.length)] as T };
}
type Rng = ReturnType<typeof prng>;

const insertAt = (text: string, at: number, piece: string) => text.slice(0, at) + piece + text.slice(at);
const onLines = (text: string, change: (lines: string[]) => void) => {
  const lines = text.split('\n');
  change(lines);
  return lines.join('\n');
};
const indentOf = (line: string) => /^\s*/.exec(line)?.[0] ?? '';

const HUGE = ['1e309', '99999999999999999999999999', '-1', '0', '1.5', '0x7fffffff', '.inf', '-.nan', '9007199254740993', '1e-400'];
const ODD = [': ', '[', '{', ']', '}', '\t', '\0', '${UNSET}', '${', '$${X}', '${UNSET:-x}', '&a ', '*a', '!!binary ', '<<: ', '? ', '- ', '#', '"', "'", '|', '>', '---\n', '...\n', '%YAML 1.1\n', '\r', '\u2028', '\ufeff', '\u202e', '\ud800', '\u{1f4a5}', 'é', '__proto__: 1\n', 'constructor: x\n'];

// Quoted keys may hold any character: a line break in one must not split its problem line.
const KEYS = ['a\\nb', 'x\\r\\nfuzz.yaml:1:1: forged', 'tab\\tkey', 'nul\\0', 'sep\\u2028', 'bell\\a', ''];

// [name, mutate]: each takes the text and the PRNG and returns the mutated text.
const operators: [string, (text: string, rng: Rng) => string][] = [
  ['delete a char', (text, rng) => { const at = rng.int(text.length); return text.slice(0, at) + text.slice(at + 1); }],
  ['duplicate a line', (text, rng) => onLines(text, (lines) => { const at = rng.int(lines.length); lines.splice(at, 0, lines[at] ?? ''); })],
  ['delete a line', (text, rng) => onLines(text, (lines) => void lines.splice(rng.int(lines.length), 1))],
  ['swap two lines\u2019 indentation', (text, rng) => onLines(text, (lines) => {
    const [i, j] = [rng.int(lines.length), rng.int(lines.length)];
    const [a, b] = [lines[i] ?? '', lines[j] ?? ''];
    lines[i] = indentOf(b) + a.trimStart();
    lines[j] = indentOf(a) + b.trimStart();
  })],
  ['insert something odd', (text, rng) => insertAt(text, rng.int(text.length + 1), rng.pick(ODD))],
  ['a tab as indentation', (text, rng) => onLines(text, (lines) => { const at = rng.int(lines.length); lines[at] = `\t${lines[at] ?? ''}`; })],
  ['a huge or odd number', (text, rng) => text.replace(/\b\d+\b/g, (n) => (rng.int(4) === 0 ? rng.pick(HUGE) : n))],
  ['a value becomes ${UNSET}', (text, rng) => onLines(text, (lines) => { const at = rng.int(lines.length); lines[at] = (lines[at] ?? '').replace(/: .*/, ': ${UNSET}'); })],
  ['a quoted key with an escape', (text, rng) => onLines(text, (lines) => {
    const at = rng.int(lines.length);
    lines.splice(at, 0, `${indentOf(lines[at] ?? '')}"${rng.pick(KEYS)}": 1`);
  })],
  ['a deep flow nesting', (text, rng) => insertAt(text, rng.int(text.length + 1), `${'['.repeat(2000)}${']'.repeat(rng.int(2) * 2000)}`)],
  ['an alias bomb', (text) => `${text}\nx0: &a0 [1,1,1,1,1,1,1,1,1,1]\n${Array.from({ length: 9 }, (_, i) => `x${i + 1}: &a${i + 1} [${Array(10).fill(`*a${i}`).join(',')}]`).join('\n')}\n`],
];

function mutate(seed: number): { ops: string[]; text: string } {
  const rng = prng(seed);
  const ops: string[] = [];
  let text = example;
  for (let n = 1 + rng.int(3); n > 0; n -= 1) {
    const [name, apply] = rng.pick(operators);
    ops.push(name);
    text = apply(text, rng);
  }
  return { ops, text };
}

/** 'valid', 'rejected', or what went wrong. */
function verdict(text: string): 'valid' | 'rejected' | string {
  try {
    parseConfig(text, FILE, {});
    return 'valid';
  } catch (error) {
    if (!(error instanceof StevedoreError) || error.code !== 'CONFIG_INVALID') return `unhandled ${String((error as Error)?.name)}: ${errorMessage(error)}`;
    const lines = error.message.split('\n');
    const bad = lines.find((line) => !/^fuzz\.yaml:\d+:\d+: /.test(line));
    if (bad !== undefined) return `a line without FILE:LINE:COL: ${JSON.stringify(bad.slice(0, 120))}`;
    if (!(error instanceof ConfigError) || error.problems.length === 0) return 'CONFIG_INVALID without problems';
    // A line per problem, and no more: a forged "fuzz.yaml:1:1: …" line would pass the test above.
    if (lines.length !== error.problems.length) return `${lines.length} lines for ${error.problems.length} problems`;
    return 'rejected';
  }
}

describe('config fuzz', () => {
  const results = Array.from({ length: MUTATIONS }, (_, seed) => ({ seed, ...mutate(seed) }));
  const tally = { valid: 0, rejected: 0, unhandled: 0 };

  afterAll(() => {
    // eslint-disable-next-line no-console -- the issue asks each hostile suite to print what it tried
    console.log(`config fuzz: ${MUTATIONS} mutations, ${tally.valid} valid, ${tally.rejected} rejected with FILE:LINE:COL, ${tally.unhandled} unhandled`);
  });

  it('the unmutated example parses', () => {
    expect(verdict(example)).toBe('valid');
  });

  it('keeps a problem whose quoted key holds a line break on its one line (no forged lines)', () => {
    const forged = `${example}"x\\r\\nfuzz.yaml:1:1: all good": 1\n`;
    expect(() => parseConfig(forged, FILE, {})).toThrow(ConfigError);
    expect(verdict(forged)).toBe('rejected');
    expect(() => parseConfig(forged, FILE, {})).toThrow(/^fuzz\.yaml:\d+:1: x\\r\\nfuzz\.yaml:1:1: all good: unknown key$/);
  });

  it(`${MUTATIONS} seeded mutations of config.example.yaml: a config or CONFIG_INVALID at FILE:LINE:COL, nothing else`, () => {
    const failures: string[] = [];
    for (const { seed, ops, text } of results) {
      const outcome = verdict(text);
      if (outcome === 'valid' || outcome === 'rejected') tally[outcome] += 1;
      else {
        tally.unhandled += 1;
        failures.push(`seed ${seed} (${ops.join(' + ')}): ${outcome}`);
      }
    }
    expect(failures).toEqual([]);
    // The mutations must exercise both sides, or they prove little.
    expect(tally.valid).toBeGreaterThan(MUTATIONS / 20);
    expect(tally.rejected).toBeGreaterThan(MUTATIONS / 4);
  });
});
