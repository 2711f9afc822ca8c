// What a selector takes (SPEC §7): every label equal, and the name glob (picomatch), ANDed.
// Docker and Podman filter the labels in the daemon; Incus and LXD are matched here.
import picomatch from 'picomatch';
import type { Selector } from './types.js';

/** A test of a container's name against the selector's glob (every name without one). */
export function nameMatcher(selector: Selector): (name: string) => boolean {
  if (selector.name === undefined) return () => true;
  const test = picomatch(selector.name, { dot: true });
  return (name) => test(name); // picomatch's matcher takes a second argument: not this one's
}

/** True when every label the selector names has its value in `labels`. */
export const labelsMatch = (selector: Selector, labels: Readonly<Record<string, string>>): boolean =>
  Object.entries(selector.labels).every(([key, value]) => labels[key] === value);

/** The selector for people and logs: `app=web, name web-*`. */
export function describeSelector(selector: Selector): string {
  const labels = Object.entries(selector.labels).map(([key, value]) => `${key}=${value}`);
  return [...labels, ...(selector.name === undefined ? [] : [`name ${selector.name}`])].join(', ');
}
