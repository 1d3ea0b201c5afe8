// znode path helpers.

/** Throws TypeError unless `path` is an absolute znode path (no trailing '/', no empty or relative segments). */
export function assertPath(path: string): void {
  if (
    typeof path !== 'string' ||
    path[0] !== '/' ||
    (path.length > 1 && (path.endsWith('/') || path.includes('//') || /\/\.\.?(\/|$)/.test(path))) ||
    path.includes('\0')
  ) {
    throw new TypeError(`invalid znode path: ${JSON.stringify(path)}`);
  }
}

/** Parent of a znode path ('/' for top-level nodes and for '/'). */
export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/** Child path of `parent` named `name`. */
export function childPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

/** '/a/b/c' → ['/a', '/a/b', '/a/b/c'] */
export function ancestorsAndSelf(path: string): string[] {
  if (path === '/') return [];
  const out: string[] = [];
  let i = path.indexOf('/', 1);
  while (i !== -1) {
    out.push(path.slice(0, i));
    i = path.indexOf('/', i + 1);
  }
  out.push(path);
  return out;
}
