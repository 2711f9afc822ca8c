// A container target names one `container` or a `select`or (a fleet, SPEC §7), never both
// nor neither. What needs one container cannot use a fleet: a legacy rule (its
// X-Container-Name is the container's name).
import { isEntry, type Context, type Entry } from './entries.js';

interface Users {
  legacy: [Entry, number][];
  watch: [Entry, number][];
}

export function checkFleets(targets: Entry, { legacy }: Users, ctx: Context): void {
  for (const [name, target] of Object.entries(targets)) {
    if (!isEntry(target) || target.runtime === 'local' || typeof target.runtime !== 'string') continue;
    const one = target.container !== undefined;
    const many = target.select !== undefined;
    if (one === many) {
      const message = one ? 'name one container or a select, not both' : 'expected container (one container) or select (a fleet: labels and/or a name glob)';
      ctx.addIssue({ code: 'custom', path: ['targets', name, one ? 'select' : 'container'], message });
    }
    if (typeof target.remote === 'string' && typeof target.container === 'string' && target.container.includes(':')) {
      ctx.addIssue({ code: 'custom', path: ['targets', name, 'container'], message: `the remote is given by remote: "${target.remote}"; name the container without one` });
    }
    if (many && isEntry(target.select) && !hasCriteria(target.select)) {
      ctx.addIssue({ code: 'custom', path: ['targets', name, 'select'], message: 'a select needs labels or a name glob: it would match every container' });
    }
  }
  for (const [rule, i] of legacy) {
    const target = typeof rule.target === 'string' ? targets[rule.target] : undefined;
    if (isEntry(target) && target.select !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['http', 'legacy', i, 'target'], message: `"${String(rule.target)}" is a fleet (select); a legacy rule needs a target with one container (X-Container-Name names it)` });
    }
  }
}

const hasCriteria = (select: Entry) => (isEntry(select.labels) && Object.keys(select.labels).length > 0) || typeof select.name === 'string';
