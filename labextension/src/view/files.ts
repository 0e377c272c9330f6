/**
 * Files of the server a view links to (a notebook job's executed copy). Opening one needs
 * the application (JupyterLab's document manager), which only the labextension has: it
 * registers an opener here; elsewhere (the anywidget in another front end) a view shows the
 * path as text.
 */

export type PathOpener = (path: string) => void;

let opener: PathOpener | null = null;
let serverRoot = '';

/** Set by the labextension: how to open a path relative to the server's root, and that root. */
export function setPathOpener(open: PathOpener | null, root = ''): void {
  opener = open;
  serverRoot = root;
}

export function pathOpener(): PathOpener | null {
  return opener;
}

const HOME = /^(\/root|\/home\/[^/]+|\/Users\/[^/]+)(?=\/|$)/;

/**
 * `abs` relative to the server's root directory, or null when it lies outside (or the
 * root is unknown). JupyterLab gives the root with the home folder as `~`
 * (`~/work`), so a `~` root matches under any usual home folder.
 */
export function relativeToRoot(abs: string, root: string = serverRoot): string | null {
  if (!root || !abs.startsWith('/')) {
    return null;
  }
  let base = root.replace(/\/+$/, '');
  if (base === '~' || base.startsWith('~/')) {
    const home = HOME.exec(abs);
    if (!home) {
      return null;
    }
    base = home[1] + base.slice(1);
  }
  if (base === '') {
    return abs.slice(1);
  }
  return abs.startsWith(base + '/') ? abs.slice(base.length + 1) : null;
}
