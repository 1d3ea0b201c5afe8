// fs.watch on the lease dirs of a run dir: "look at VNI n's leases again". The run dir is watched
// too, so a lease dir made later (the first start of a network) is picked up, and one deleted or
// replaced is dropped or watched anew (an event naming it in the run dir, or another inode under
// the same name: a replacement may reuse the inode number). Events are coalesced per
// VNI to one call per turn of the event loop; a throwing callback does not stop the watch. Like
// every source of the daemon it may over-report and never replaces a resync.
import { mkdirSync, readdirSync, statSync, watch, type FSWatcher } from 'node:fs';
import { LEASE_DIR_NAME } from './args.ts';

interface Watched {
  watcher: FSWatcher;
  ino: number;
}

export function watchLeaseDirs(runDir: string, onChange: (vni: number) => void): () => void {
  mkdirSync(runDir, { recursive: true, mode: 0o755 });
  const dirs = new Map<number, Watched>();
  const pending = new Set<number>();
  let scheduled = false;
  let closed = false;

  const flush = (): void => {
    scheduled = false;
    const vnis = [...pending].sort((a, b) => a - b);
    pending.clear();
    for (const vni of vnis) {
      if (closed) return;
      try {
        onChange(vni);
      } catch {
        // the caller's problem; the watch goes on
      }
    }
  };
  const fire = (vni: number): void => {
    if (closed) return;
    pending.add(vni);
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
  const inoOf = (path: string): number | undefined => {
    try {
      const st = statSync(path);
      return st.isDirectory() ? st.ino : undefined;
    } catch {
      return undefined;
    }
  };
  const drop = (vni: number): void => {
    dirs.get(vni)?.watcher.close();
    dirs.delete(vni);
  };
  const attach = (vni: number, ino: number): void => {
    try {
      const watcher = watch(`${runDir}/leases-${vni}`, () => fire(vni));
      watcher.on('error', () => {
        drop(vni);
        fire(vni);
      });
      dirs.set(vni, { watcher, ino });
    } catch {
      // gone between readdir and watch: the run dir's watcher rescans
    }
  };
  /** Brings the watchers in line with the lease dirs present; `report`: fire for every change found. */
  const scan = (report: boolean): void => {
    if (closed) return;
    let names: string[];
    try {
      names = readdirSync(runDir);
    } catch {
      names = [];
    }
    const present = new Map<number, number>();
    for (const name of names) {
      const m = LEASE_DIR_NAME.exec(name);
      if (!m) continue;
      const vni = Number(m[1]);
      const ino = inoOf(`${runDir}/${name}`);
      if (ino !== undefined) present.set(vni, ino);
    }
    for (const [vni, w] of [...dirs]) {
      if (present.get(vni) !== w.ino) {
        drop(vni);
        if (report) fire(vni);
      }
    }
    for (const [vni, ino] of present) {
      if (dirs.has(vni)) continue;
      attach(vni, ino);
      if (report) fire(vni);
    }
  };

  /**
   * The run dir's entry `name` changed: a lease dir made, removed or replaced (maybe under a reused
   * inode number) is watched anew. Other entries (the logs dnsmasq writes to, pidfiles) are no
   * concern; without a name, everything is looked at again.
   */
  const onRunDir = (name: string | null): void => {
    if (closed) return;
    if (name === null) return scan(true);
    const m = LEASE_DIR_NAME.exec(name);
    if (!m) return;
    const vni = Number(m[1]);
    drop(vni);
    const ino = inoOf(`${runDir}/${name}`);
    if (ino !== undefined) attach(vni, ino);
    fire(vni);
  };
  const top = watch(runDir, (_event, name) => onRunDir(typeof name === 'string' ? name : null));
  top.on('error', () => undefined);
  scan(false);
  return () => {
    if (closed) return;
    closed = true;
    top.close();
    for (const vni of [...dirs.keys()]) drop(vni);
    pending.clear();
  };
}
