// A mirror's symlinks by the file each leads to: a link's own events say nothing of a
// change to its target, which must be pushed at the link too.
export interface MirrorLinks {
  /** `link` was seen: where it leads is looked up now (`resolve`), replacing what was known. */
  seen(link: string): void;
  forget(link: string): void;
  /** The links known to lead to `rel`. */
  to(rel: string): Iterable<string>;
}

/** `resolve`: the relative path a link leads to; rejects when it leads nowhere it may. */
export function createMirrorLinks(resolve: (link: string) => Promise<string>): MirrorLinks {
  const targets = new Map<string, string>(); // link → the file it leads to
  const links = new Map<string, Set<string>>(); // file → the links to it
  // The newest look per link wins: an older one that ends later must not undo it.
  const looks = new Map<string, Promise<string>>();

  function forget(link: string): void {
    const target = targets.get(link);
    if (target === undefined) return;
    targets.delete(link);
    links.get(target)?.delete(link);
    if (links.get(target)?.size === 0) links.delete(target);
  }

  return {
    seen(link) {
      const look = resolve(link);
      looks.set(link, look);
      void look.then(
        (target) => {
          if (looks.get(link) !== look) return;
          looks.delete(link);
          forget(link);
          targets.set(link, target);
          links.set(target, (links.get(target) ?? new Set()).add(link));
        },
        () => {
          if (looks.get(link) !== look) return;
          looks.delete(link);
          forget(link);
        },
      );
    },
    forget(link) {
      looks.delete(link);
      forget(link);
    },
    to: (rel) => links.get(rel) ?? [],
  };
}
