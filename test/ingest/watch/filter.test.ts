// createIgnore: which paths under a watched directory chokidar is told to leave alone.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createIgnore } from '../../../src/ingest/watch/filter.js';

const root = '/srv/watched';
const at = (rel: string) => path.join(root, rel);

describe('createIgnore with the defaults only', () => {
  const ignored = createIgnore(root, []);

  it.each([
    ['x.part', true],
    ['sub/deep/x.part', true],
    ['x.tmp', true],
    ['sub/x.tmp', true],
    ['.x.swp', true],
    ['x.swp', true],
    ['x~', true],
    ['sub/x.txt~', true],
    ['.hidden', true],
    ['sub/.hidden', true],
    ['.git', true],
    ['.git/config', true],
    ['sub/.cache/a/b.txt', true],
    // dot-names that start with two dots are dotfiles too (e.g. Kubernetes' ..data)
    ['..data', true],
    ['..data/config.yaml', true],
    ['sub/..2024_01_01/x', true],
    ['x.txt', false],
    ['sub/x.txt', false],
    ['x.part.txt', false],
    ['part', false],
    ['tmp/x.txt', false],
    ['x.tmpl', false],
    ['a.b.c', false],
    ['sub.d/x', false],
    ['~x', false],
  ])('%s → %s', (rel, expected) => {
    expect(ignored(at(rel))).toBe(expected);
  });

  it('never ignores the watched directory itself, nor anything outside it', () => {
    expect(ignored(root)).toBe(false);
    expect(ignored(`${root}/`)).toBe(false);
    expect(ignored('/srv')).toBe(false);
    expect(ignored('/srv/.other/x.part')).toBe(false);
    expect(ignored('/srv/watched-sibling/x.tmp')).toBe(false);
  });

  it('a watched directory whose own path has dot-components is not ignored wholesale', () => {
    const dotted = createIgnore('/home/u/.local/drop', []);
    expect(dotted('/home/u/.local/drop/x.txt')).toBe(false);
    expect(dotted('/home/u/.local/drop/.x')).toBe(true);
  });
});

describe('createIgnore with ignore globs (picomatch, relative to the watched directory)', () => {
  const ignored = createIgnore(root, ['**/*.log', 'build/**', '*.bak', 'cache']);

  it.each([
    ['x.log', true],
    ['sub/x.log', true],
    ['build', true],
    ['build/out.js', true],
    ['build/a/b/out.js', true],
    ['x.bak', true],
    // `*.bak` has no `**/`: only at the top level
    ['sub/x.bak', false],
    ['cache', true],
    ['sub/cache', false],
    ['x.txt', false],
    ['builder/x', false],
    // the defaults still apply
    ['x.part', true],
    ['sub/.hidden', true],
  ])('%s → %s', (rel, expected) => {
    expect(ignored(at(rel))).toBe(expected);
  });
});
