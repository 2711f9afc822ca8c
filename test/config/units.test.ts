import { describe, expect, it } from 'vitest';
import { formatBytes, parseDuration, parseSize } from '../../src/config/units.js';

describe('parseDuration', () => {
  it.each([
    ['0ms', 0],
    ['250ms', 250],
    ['1s', 1000],
    ['5s', 5000],
    ['1.5s', 1500],
    ['0.25s', 250],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['1.5h', 5_400_000],
    ['0.4ms', 0], // rounded to whole milliseconds
    ['0.6ms', 1],
    ['  30s  ', 30_000], // surrounding blanks are trimmed
  ])('%j → %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    '',
    '5', // a unit is required
    's',
    '5 s', // no blank between number and unit (unlike sizes)
    '-5s',
    '+5s',
    '5S',
    '5sec',
    '5d', // days are not a unit
    '1m30s', // no compound durations
    '.5s',
    '5.s',
    '1e3ms',
    '0x10s',
    '5s5',
    'Infinitys',
    'NaNms',
  ])('%j is not a duration', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe('parseSize', () => {
  it.each([
    ['0B', 0],
    ['1B', 1],
    ['512KiB', 512 * 1024],
    ['1KB', 1000],
    ['10MB', 10_000_000],
    ['64MiB', 64 * 2 ** 20],
    ['2GiB', 2 * 2 ** 30],
    ['1GB', 1e9],
    ['1TiB', 2 ** 40],
    ['3TB', 3e12],
    ['1.5KiB', 1536],
    ['1.5B', 1], // floored to whole bytes
    ['512 KiB', 512 * 1024], // one blank allowed between number and unit
    [' 1MiB ', 2 ** 20],
  ])('%j → %d bytes', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each([
    '',
    '512', // a unit is required (a bare number in YAML is a number, not a string)
    'KiB',
    '2gib', // units are case-sensitive
    '2GIB',
    '2G',
    '2Gi',
    '2kB',
    '-1MiB',
    '1e3B',
    '512  KiB', // at most one blank
    '.5GiB',
    '2PiB',
    '2 GiB extra',
  ])('%j is not a size', (text) => {
    expect(parseSize(text)).toBeUndefined();
  });
});

describe('formatBytes', () => {
  it.each([
    [0, '0B'],
    [1023, '1023B'],
    [1024, '1.0KiB'],
    [1536, '1.5KiB'],
    [2 ** 20, '1.0MiB'],
    [2 * 2 ** 30, '2.0GiB'],
    [2 ** 50, '1024.0TiB'], // TiB is the largest unit
  ])('%d → %j', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });

  it('round-trips through parseSize for whole units', () => {
    for (const text of ['1KiB', '3MiB', '2GiB']) {
      expect(parseSize(formatBytes(parseSize(text) ?? NaN))).toBe(parseSize(text));
    }
  });
});
