// What a look at a fleet reports as changed, and what a selector takes.
import { describe, expect, it } from 'vitest';
import { diffMembers } from '../../src/targets/fleet/diff.js';
import { describeSelector, labelsMatch, nameMatcher } from '../../src/targets/fleet/selector.js';

const web1 = { name: 'web-1', id: 'a1', running: true };
const web2 = { name: 'web-2', id: 'b1', running: true };

describe('diffMembers', () => {
  it('a new name joins, a missing one leaves, and nothing changed is undefined', () => {
    expect(diffMembers([web1], [web1, web2])).toEqual({ joined: [web2], left: [], started: [], stopped: [] });
    expect(diffMembers([web1, web2], [web2])).toEqual({ joined: [], left: ['web-1'], started: [], stopped: [] });
    expect(diffMembers([web1, web2], [web2, web1])).toBeUndefined();
    expect(diffMembers([], [])).toBeUndefined();
  });

  it('a known name with a new id joins again (a re-created container), running or not, and does not also leave', () => {
    const recreated = { name: 'web-1', id: 'a2', running: false };
    expect(diffMembers([web1, web2], [recreated, web2])).toEqual({ joined: [recreated], left: [], started: [], stopped: [] });
  });

  it('the same container stopping and starting is stopped and started; a joined one that is not running is only joined', () => {
    const down = { ...web1, running: false };
    expect(diffMembers([web1], [down])).toEqual({ joined: [], left: [], started: [], stopped: [down] });
    expect(diffMembers([down], [web1])).toEqual({ joined: [], left: [], started: [web1], stopped: [] });
    expect(diffMembers([], [down])).toEqual({ joined: [down], left: [], started: [], stopped: [] });
  });

  it('a rename is the old name leaving and the new one joining (same id)', () => {
    const renamed = { ...web1, name: 'web-9' };
    expect(diffMembers([web1], [renamed])).toEqual({ joined: [renamed], left: ['web-1'], started: [], stopped: [] });
  });
});

describe('selector', () => {
  it('the name glob is picomatch\'s, whole-name; without one every name matches', () => {
    const named = nameMatcher({ labels: {}, name: 'web-*' });
    expect(['web-1', 'web-', 'web-a.b', 'api-1', 'xweb-1', 'web'].map(named)).toEqual([true, true, true, false, false, false]);
    expect(nameMatcher({ labels: {}, name: 'web-{1,2}' })('web-3')).toBe(false);
    expect(nameMatcher({ labels: {} })('anything')).toBe(true);
  });

  it('every label must be there with its value; extra labels do not matter', () => {
    const select = { labels: { app: 'web', tier: 'front' } };
    expect(labelsMatch(select, { app: 'web', tier: 'front', other: 'x' })).toBe(true);
    expect(labelsMatch(select, { app: 'web' })).toBe(false);
    expect(labelsMatch(select, { app: 'web', tier: 'Front' })).toBe(false);
    expect(labelsMatch({ labels: {} }, {})).toBe(true);
  });

  it('is described for people as labels then the name', () => {
    expect(describeSelector({ labels: { app: 'web', tier: 'front' }, name: 'web-*' })).toBe('app=web, tier=front, name web-*');
  });
});
