// Public types of the ZooKeeper store. Other modules code against these names.
import type { Logger } from 'pino';

/** A znode's stat. zxids are bigint so they compare with < and >. */
export interface ZkStat {
  /** Data version: the CAS token for set/delete/check (a spec znode's version is its generation). */
  version: number;
  /** Children version (bumped on every child add/remove). */
  cversion: number;
  /** ACL version. */
  aversion: number;
  /** zxid of the transaction that created the znode. */
  czxid: bigint;
  /** zxid of the last data change (equals czxid until the first set). */
  mzxid: bigint;
  /** zxid of the last change to the children list. */
  pzxid: bigint;
  /** ms since the epoch. */
  ctime: number;
  mtime: number;
  /** Session id (16 hex digits, same format as ZkStore.sessionId) owning an ephemeral znode; null if persistent. */
  ephemeralOwner: string | null;
  dataLength: number;
  numChildren: number;
}

export interface Versioned {
  data: Buffer;
  version: number;
  stat: ZkStat;
}

export type DataState =
  | { kind: 'data'; path: string; data: Buffer; version: number; stat: ZkStat }
  | { kind: 'deleted'; path: string };

export type ChildrenState =
  | { kind: 'children'; path: string; children: string[]; stat: ZkStat }
  | { kind: 'deleted'; path: string };

/**
 * connected: a live session, requests flow.
 * suspended: the connection is lost; the session may still be alive (ephemerals and watches kept).
 * expired:   the session is gone (reported by the server, or no reconnection within the session
 *            timeout: Curator's LOST). A new session is being created; ephemerals are gone.
 */
export type ConnectionState = 'connected' | 'suspended' | 'expired';

export type CreateMode = 'persistent' | 'ephemeral' | 'persistent_sequential' | 'ephemeral_sequential';

export type Op =
  | { op: 'create'; path: string; data?: Buffer | string; mode?: CreateMode }
  | { op: 'set'; path: string; data: Buffer | string; version: number }
  | { op: 'delete'; path: string; version: number }
  | { op: 'check'; path: string; version: number };

export type OpResult = { path?: string; stat?: ZkStat };

export type AclPolicy = 'open' | 'digest-world-read' | 'digest-private';

export interface ZkStoreOptions {
  /** host:port[,host:port…][/chroot] */
  connectString: string;
  /** Requested session timeout (the server clamps it to [minSessionTimeout, maxSessionTimeout]). Default 10000. */
  sessionTimeoutMs?: number;
  /**
   * Bound on waiting for a connection: ZkStore.connect() rejects after it, and a call made while
   * the store is not connected waits at most this long before rejecting with ConnectionLossError.
   * Default: sessionTimeoutMs.
   */
  connectTimeoutMs?: number;
  /** Digest credentials, sent on every (re)connection. */
  auth?: { user: string; password: string };
  /**
   * ACL put on znodes this store creates. 'open' = world:anyone ALL. 'digest-private' = ALL for the
   * `auth` user only. 'digest-world-read' = the same plus READ for world. Default: 'digest-private'
   * when `auth` is given, else 'open'. The digest policies require `auth`.
   */
  acl?: AclPolicy;
  logger?: Logger;
}
