// A VM's serial console log as ZooKeeper keeps it (/vms/<name>/console: the last lines the node
// read from the domain's log file): read the last lines, or follow new ones. `vk vm log` and
// GET /vm/{name}/log both use this.
//
// Invariant: following never prints a line twice while the window slides (newConsoleLines), and a
// log that starts over (the domain restarted) is shown from its start.
import { map, type Observable } from 'rxjs';
import type { ZkPaths } from '../schemas/index.ts';
import type { ZkStore } from '../drivers/zk/index.ts';
import { readExistingVm } from '../cli/cluster.ts';

export const DEFAULT_CONSOLE_LINES = 100;

/** The lines of `next` that were not in `previous`: the console buffer is a sliding window. */
export function newConsoleLines(previous: readonly string[], next: readonly string[]): string[] {
  for (let drop = 0; drop <= previous.length; drop++) {
    const overlap = previous.length - drop;
    if (overlap > next.length) continue;
    let match = true;
    for (let i = 0; i < overlap; i++) {
      if (previous[drop + i] !== next[i]) {
        match = false;
        break;
      }
    }
    if (match && (overlap > 0 || previous.length === 0)) return next.slice(overlap);
  }
  // No overlap: the log started over (the domain restarted).
  return [...next];
}

export function splitConsole(text: string): string[] {
  return text === '' ? [] : text.split('\n');
}

/** The last `count` lines of the VM's console log; null when the node has written none (yet). 404 for an unknown VM. */
export async function readConsole(store: ZkStore, paths: ZkPaths, name: string, count = DEFAULT_CONSOLE_LINES): Promise<string[] | null> {
  const vm = await readExistingVm(store, paths, name, { console: true });
  return vm.console ? splitConsole(vm.console.text).slice(-count) : null;
}

/**
 * The last `count` lines, then every new line as the node writes it: each emission is the lines
 * not shown before (possibly none). Ends only when unsubscribed (or the session ends).
 */
export function followConsole(store: ZkStore, paths: ZkPaths, name: string, count = DEFAULT_CONSOLE_LINES): Observable<string[]> {
  let shown: string[] | null = null;
  return store.watchData(paths.vmConsole(name)).pipe(
    map((state) => {
      const lines = state.kind === 'data' ? splitConsole(state.data.toString('utf8')) : [];
      const fresh = shown === null ? lines.slice(-count) : newConsoleLines(shown, lines);
      shown = lines;
      return fresh;
    }),
  );
}
