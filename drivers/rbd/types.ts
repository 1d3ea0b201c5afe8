// The RBD driver's interface (DESIGN §4 "RBD locks", §5 "Ceph 16"): `rbd` and `ceph` calls, each
// bounded (--client_mount_timeout and a per-call timeout), parsed from JSON, errors mapped to a
// reason. Nothing above drivers/ runs `rbd` itself.

/** One lock on an image, as `rbd lock ls --format json` lists it. */
export interface RbdLocker {
  /** The lock id ("auto 140…" for librbd's exclusive lock, the id given to `rbd lock add` otherwise). */
  id: string;
  /** The locking client's entity, e.g. "client.4157". */
  locker: string;
  /** The client's address as Ceph saw it, e.g. "198.51.100.1:0/3412395771". */
  address: string;
}

/** A client watching an image (`rbd status --format json`): an open image, e.g. a running QEMU. */
export interface RbdWatcher {
  address: string;
  client: number;
  cookie: number;
}

/** A blocklist entry (`ceph osd blocklist ls --format json`). */
export interface BlocklistEntry {
  /** "198.51.100.1:0/0" (a whole host) or a client instance's address. */
  address: string;
  /** ISO time the entry expires. */
  until: string;
}

/**
 * Why a call failed:
 *  RbdUnreachable   the monitor did not answer within --client_mount_timeout / the call's timeout
 *  RbdLockHeld      `lock add` on an image someone else holds (EBUSY)
 *  RbdNotFound      no such pool or image (ENOENT)
 *  RbdDenied        auth refused (EACCES / EPERM)
 *  RbdFailed        anything else (the message has stderr)
 */
export type RbdErrorReason = 'RbdUnreachable' | 'RbdLockHeld' | 'RbdNotFound' | 'RbdDenied' | 'RbdFailed';

export class RbdError extends Error {
  override name = 'RbdError';
  constructor(
    readonly reason: RbdErrorReason,
    message: string,
    /** The argv that failed (without the namespace wrapper). */
    readonly command?: readonly string[],
  ) {
    super(message);
  }
}

export interface RbdOptions {
  /** ceph.conf (default: Ceph's own default, /etc/ceph/ceph.conf). */
  conf?: string;
  /** The client id, without "client." (default: Ceph's default, admin). */
  id?: string;
  keyring?: string;
  /** Run the calls inside this network namespace (`ip netns exec`; the rig and the sandbox). */
  netns?: string;
  /** --client_mount_timeout, seconds (default 3). */
  mountTimeoutS?: number;
  /** Each call is killed after this long (default 10 000 ms). */
  callTimeoutMs?: number;
  /** Where `rbd` and `ceph` are (default /usr/bin). */
  binDir?: string;
}

export interface RbdDriver {
  /** `rbd lock ls --format json POOL/IMAGE`. */
  listLocks(image: string): Promise<RbdLocker[]>;
  /** `rbd lock add POOL/IMAGE ID` (RbdLockHeld when taken). Used by tests and the sandbox, never by the daemon to gate a start. */
  addLock(image: string, id: string): Promise<void>;
  /**
   * `rbd lock rm POOL/IMAGE ID LOCKER` (a lock already gone is not an error). By default with
   * `--rbd_blocklist_on_break_lock=false`; `blocklist: true` also blocklists the locker's client
   * instance, which ends its watch at once — for a fenced node's locks (recovery), never for a live one.
   */
  removeLock(image: string, lock: Pick<RbdLocker, 'id' | 'locker'>, opts?: { blocklist?: boolean }): Promise<void>;
  /** `rbd status --format json POOL/IMAGE`: its watchers. */
  watchers(image: string): Promise<RbdWatcher[]>;
  /** `ceph osd blocklist add ADDRESS TTL_S`. */
  blocklistAdd(address: string, ttlS: number): Promise<void>;
  /** `ceph osd blocklist rm ADDRESS` (an absent entry is not an error). */
  blocklistRemove(address: string): Promise<void>;
  /** `ceph osd blocklist ls --format json`. */
  blocklistList(): Promise<BlocklistEntry[]>;
}

/** The host part of a Ceph client address ("198.51.100.1:0/3412395771" → "198.51.100.1"; v2/v1 prefixes and [v6] brackets handled). */
export function addressHost(address: string): string {
  let a = address.trim();
  const m = /^(?:v[12]:)?(.*)$/.exec(a);
  a = m ? m[1]! : a;
  if (a.startsWith('[')) return a.slice(1, a.indexOf(']'));
  const colon = a.lastIndexOf(':', a.indexOf('/') >= 0 ? a.indexOf('/') : a.length);
  return colon >= 0 ? a.slice(0, colon) : a.split('/')[0]!;
}
