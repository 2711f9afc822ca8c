// The arguments batch.sh gets and the report it prints, as the adapter reads them.
// (batch.sh itself runs against real containers in test/runtimes/.)
import { describe, expect, it } from 'vitest';
import { toResult } from '../../src/targets/container/items.js';
import { parseReport, planBatch, scriptArgs, stagedPath, type ItemOutcome } from '../../src/targets/container/plan.js';
import { failureKind, type DeleteItem, type PutItem } from '../../src/targets/target.js';

const put = (dest: string, extra: Partial<PutItem> = {}): PutItem => ({ op: 'put', id: dest, source: `/spool${dest}`, dest, bytes: 1, mode: 0o644, dirMode: 0o755, ...extra });
const del = (dest: string): DeleteItem => ({ op: 'delete', id: dest, dest });

describe('planBatch and scriptArgs', () => {
  it('groups puts by directory, numbers each directory once, and keeps deletes apart', () => {
    const plan = planBatch([del('/old')], [put('/b/2'), put('/a/1', { dirMode: 0o750 }), put('/b/1'), put('/top')]);
    expect(plan.dirs).toEqual([{ dir: '/', root: '/', mode: 0o755 }, { dir: '/a', root: '/a', mode: 0o750 }, { dir: '/b', root: '/b', mode: 0o755 }]);
    expect(plan.puts.map(({ item, dir }) => [item.dest, dir])).toEqual([['/top', 0], ['/a/1', 1], ['/b/2', 2], ['/b/1', 2]]);
    expect(scriptArgs(plan, 'all', 'TAG', false)).toEqual([
      'all', 'TAG', '0',
      '3', '/', '/', '0755', '/a', '/a', '0750', '/b', '/b', '0755',
      '1', '/old', '/',
      '4', '0', 'top', '0:0', '0644', '1', '1', '0:0', '0644', '2', '2', '0:0', '0644', '2', '1', '0:0', '0644',
    ]);
  });

  it('checks each directory against the longest configured root among its files', () => {
    const plan = planBatch(
      [{ ...del('/srv/www/old/x'), root: '/srv/www' }],
      [put('/srv/www/a/1', { root: '/srv' }), put('/srv/www/a/2', { root: '/srv/www' }), put('/srv/www/a/3')],
    );
    expect(plan.dirs).toEqual([{ dir: '/srv/www/a', root: '/srv/www', mode: 0o755 }]); // a file without a root weakens no other
    const bare = planBatch([], [put('/srv/www/a/3')]);
    expect(bare.dirs).toEqual([{ dir: '/srv/www/a', root: '/srv/www/a', mode: 0o755 }]);
    expect(scriptArgs(plan, 'all', 'T', false).slice(7, 10)).toEqual(['1', '/srv/www/old/x', '/srv/www']);
  });

  it('passes the configured owner, and names that would be code in a shell only as arguments', () => {
    const name = '$(reboot); `x` "q" \'s\' \nnewline';
    const plan = planBatch([], [put(`/d/${name}`, { owner: { uid: 33, gid: 44 }, mode: 0o600 })]);
    expect(scriptArgs(plan, 'copy', 'T', true).slice(-4)).toEqual(['0', name, '33:44', '0600']);
    expect(stagedPath((plan.puts[0] as { item: PutItem }).item, 'T')).toBe(`d/.stevedore-T/${name}`);
  });
});

describe('parseReport', () => {
  it('reads removals, failed puts, a group line for the rest, and what tar said', () => {
    const report = parseReport([
      'r 0 ok',
      'r 1 fail rm: cannot remove x: Permission denied',
      't - tar: short read',
      'p 1 isdir /srv/a is a directory',
      'g 0 3',
      'p 4 unsafe mkdir: can\'t create directory \'/x\': Not a directory',
      'd 2 unsafe /srv/link leads outside /srv through a symlink',
      'noise a shell may print',
    ].join('\n'));
    expect([...report.dirErrors]).toEqual([[2, { status: 'unsafe', message: '/srv/link leads outside /srv through a symlink' }]]);
    expect(report.tarError).toBe('tar: short read');
    expect([...report.deletes]).toEqual([[0, { status: 'ok' }], [1, { status: 'fail', message: 'rm: cannot remove x: Permission denied' }]]);
    expect(report.puts.get(0)).toEqual({ status: 'ok' });
    expect(report.puts.get(1)).toEqual({ status: 'isdir', message: '/srv/a is a directory' });
    expect(report.puts.get(2)).toEqual({ status: 'ok' });
    expect(report.puts.get(3)).toBeUndefined(); // outside every group and never reported: the adapter fails it
    expect(report.puts.get(4)).toMatchObject({ status: 'unsafe' });
    expect(report.ended).toBe(false); // no end line: the adapter pushes the batch again
  });

  it('knows a report is whole only by its end line', () => {
    expect(parseReport('g 0 1\ne - end\n').ended).toBe(true);
    expect(parseReport('g 0 1\n').ended).toBe(false);
    expect(parseReport('').ended).toBe(false);
    expect(parseReport('p 0 missing e - end\n').ended).toBe(false); // a message that says it is not the line
  });

  it('reads which directories a copy could not make before the runtime\'s copy, and the line it then waits at', () => {
    const name = 'n'.repeat(300);
    const report = parseReport([
      'r 0 ok',
      `d 2 fail mkdir: can't create directory '/srv/other dir/with space/${name}': File name too long`,
      'c - copy',
    ].join('\n'));
    expect(report.dirErrors.get(2)).toEqual({ status: 'fail', message: `mkdir: can't create directory '/srv/other dir/with space/${name}': File name too long` });
    expect([...report.deletes]).toEqual([[0, { status: 'ok' }]]);
    expect(report.puts.size).toBe(0);
  });
});

describe('what a report line means (items.ts toResult)', () => {
  const kindOf = (outcome: ItemOutcome) => {
    const result = toResult(outcome);
    return result.ok ? 'ok' : `${result.error.code} ${failureKind(result.error)}`;
  };
  it.each([
    // busybox and GNU wording of ENAMETOOLONG, from mkdir (a directory) and tar (a file)
    [{ status: 'unsafe', message: "mkdir: can't create directory '/srv/a/nnn': File name too long" }, 'DEST_TOO_LONG permanent'],
    [{ status: 'fail', message: 'mkdir: cannot create directory ‘/srv/a/nnn’: File name too long' }, 'DEST_TOO_LONG permanent'],
    [{ status: 'missing', message: "tar: can't open 'srv/a/.stevedore-T/nnn': File name too long" }, 'DEST_TOO_LONG permanent'],
    [{ status: 'missing', message: 'tar: srv/a/.stevedore-T/nnn: Cannot open: File name too long' }, 'DEST_TOO_LONG permanent'],
    [{ status: 'missing', message: 'tar: short read' }, 'TARGET_IO transient'],
    [{ status: 'fail', message: 'mkdir: cannot create directory ‘/srv/a’: No space left on device' }, 'TARGET_FULL transient'],
    [{ status: 'ok' }, 'ok'],
  ] as [ItemOutcome, string][])('%j is %s', (outcome, expected) => {
    expect(kindOf(outcome)).toBe(expected);
  });
});
