// The RBD driver (DESIGN §4 "RBD locks", §5 "Ceph 16"): image locks, watchers and the OSD
// blocklist through the `rbd` and `ceph` command-line tools of Ceph 16.
//
//   const rbd = createRbdDriver({ conf: '/etc/ceph/ceph.conf', id: 'virtkeeper', mountTimeoutS: 3 });
//   await rbd.listLocks('vms/web1-disk0');   // [{ id: 'auto 1407…', locker: 'client.4157', address: '198.51.100.1:0/3412395771' }]
//   await rbd.removeLock('vms/web1-disk0', { id, locker });   // never blocklists the old locker
//   await rbd.watchers('vms/web1-disk0');    // [{ address, client: 4181, cookie }]: who has it open
//   await rbd.blocklistAdd('198.51.100.3:0/0', 86_400);  await rbd.blocklistList();
//
// Every call is one process (./call.ts): --client_mount_timeout so a dead monitor costs
// mountTimeoutS, not librados' 300 s, and a kill of its process group after callTimeoutMs for
// whatever else hangs (an OSD that does not answer). Failures are RbdError with a reason
// (./errors.ts); output is parsed defensively (./parse.ts): what cannot be read is RbdFailed.
import { shown, type RunOutcome } from '../exec/run.ts';
import { call, checkBlocklistAddress, checkImage, checkLocker, checkLockId, commandOf, settingsOf, type CallSettings, type Tool } from './call.ts';
import { lockGone } from './errors.ts';
import { ParseError, parseBlocklist, parseLocks, parseWatchers } from './parse.ts';
import { RbdError, type RbdDriver, type RbdOptions } from './types.ts';

export * from './types.ts';
export { parseBlocklist, parseLocks, parseWatchers } from './parse.ts';

/** Runs a call with JSON output and parses its stdout; a parse failure is RbdFailed naming the command. */
async function readJson<T>(s: CallSettings, tool: Tool, args: readonly string[], parse: (stdout: string) => T): Promise<T> {
  const o: RunOutcome = await call(s, tool, args, { json: true });
  try {
    return parse(o.stdout);
  } catch (err) {
    if (err instanceof ParseError) {
      const command = commandOf(s, tool, args, true);
      throw new RbdError('RbdFailed', `${shown(command)}: ${err.message}`, command);
    }
    throw err;
  }
}

export function createRbdDriver(o: RbdOptions = {}): RbdDriver {
  const s = settingsOf(o);
  return {
    listLocks: async (image) => readJson(s, 'rbd', ['lock', 'ls', checkImage(image)], parseLocks),
    async addLock(image, id) {
      await call(s, 'rbd', ['lock', 'add', '--', checkImage(image), checkLockId(id)], { op: 'lockAdd' });
    },
    async removeLock(image, lock, opts = {}) {
      const args = ['lock', 'rm', `--rbd_blocklist_on_break_lock=${opts.blocklist === true}`, '--', checkImage(image), checkLockId(lock.id), checkLocker(lock.locker)];
      await call(s, 'rbd', args, { accept: lockGone });
    },
    watchers: async (image) => readJson(s, 'rbd', ['status', checkImage(image)], parseWatchers),
    async blocklistAdd(address, ttlS) {
      if (!(Number.isFinite(ttlS) && ttlS > 0)) throw new TypeError(`blocklist TTL must be a positive number of seconds (got ${ttlS})`);
      await call(s, 'ceph', ['osd', 'blocklist', 'add', checkBlocklistAddress(address), String(ttlS)]);
    },
    async blocklistRemove(address) {
      // Ceph 16 answers 0 ("… isn't blocklisted") for an absent entry; ENOENT is taken as that too.
      await call(s, 'ceph', ['osd', 'blocklist', 'rm', checkBlocklistAddress(address)], { accept: (r) => /isn't blocklisted|ENOENT/.test(r.stderr) });
    },
    blocklistList: async () => readJson(s, 'ceph', ['osd', 'blocklist', 'ls'], parseBlocklist),
  };
}
