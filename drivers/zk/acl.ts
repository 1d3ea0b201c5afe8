// ACLs for znodes this store creates, from the store's AclPolicy and digest credentials; and
// checking and tightening the ACLs of znodes someone else created (see the end of the file).
import { createHash } from 'node:crypto';
import zookeeper from 'node-zookeeper-client';
import { codeOf, ConnectionLossError, toZkError, ZK_CODE } from './errors.ts';
import type { AclPolicy, ZkStoreOptions } from './types.ts';

const { ACL, Id, Permission } = zookeeper;
type AclList = InstanceType<typeof ACL>[];

/** ZooKeeper's digest id: `user:base64(sha1("user:password"))`. */
export function digestId(user: string, password: string): string {
  return `${user}:${createHash('sha1').update(`${user}:${password}`).digest('base64')}`;
}

/** The auth payload for addAuthInfo('digest', …). */
export function digestAuth(user: string, password: string): Buffer {
  return Buffer.from(`${user}:${password}`);
}

export function resolveAclPolicy(opts: Pick<ZkStoreOptions, 'acl' | 'auth'>): AclPolicy {
  const policy = opts.acl ?? (opts.auth ? 'digest-private' : 'open');
  if (policy !== 'open' && !opts.auth) throw new TypeError(`acl '${policy}' needs auth credentials`);
  return policy;
}

export function aclFor(policy: AclPolicy, auth?: { user: string; password: string }): AclList {
  if (policy === 'open') return [new ACL(Permission.ALL, new Id('world', 'anyone'))];
  if (!auth) throw new TypeError(`acl '${policy}' needs auth credentials`);
  const owner = new ACL(Permission.ALL, new Id('digest', digestId(auth.user, auth.password)));
  if (policy === 'digest-private') return [owner];
  return [owner, new ACL(Permission.READ, new Id('world', 'anyone'))];
}

// ------------------------------------------------------------------------ checking and setting
// ZkStore puts its ACL on the znodes it creates; znodes someone else created keep theirs. These
// let a tool with credentials (vk --auth) verify, and tighten, the ACLs of znodes it did not
// create, over a short-lived session of its own.

/** One ACL entry, as plain data. */
export interface AclEntry {
  perms: number;
  scheme: string;
  id: string;
}

export const PERM = { READ: Permission.READ, ALL: Permission.ALL } as const;

/** `world:anyone=ALL` style text for messages (never includes credentials: digest ids are hashes). */
export function describeAcl(acl: readonly AclEntry[]): string {
  const perms = (p: number) => (p === Permission.ALL ? 'ALL' : ['r', 'w', 'c', 'd', 'a'].filter((_, i) => (p & (1 << i)) !== 0).join(''));
  return acl.map((e) => `${e.scheme}:${e.scheme === 'digest' ? e.id.split(':')[0] : e.id}=${perms(e.perms)}`).join(',');
}

/** True when nobody but the digest user `auth` may do more than read. */
export function isPrivateTo(acl: readonly AclEntry[], auth: { user: string; password: string }): boolean {
  const owner = digestId(auth.user, auth.password);
  return acl.every((e) => (e.scheme === 'digest' && e.id === owner) || (e.perms & ~Permission.READ) === 0);
}

/** True when only the digest user `auth` may do anything at all, reading included (a znode holding secrets). */
export function isSecretTo(acl: readonly AclEntry[], auth: { user: string; password: string }): boolean {
  const owner = digestId(auth.user, auth.password);
  return acl.length > 0 && acl.every((e) => (e.scheme === 'digest' && e.id === owner) || e.perms === 0);
}

/** The ACL of a znode only `auth` may read or change. */
export function secretAcl(auth: { user: string; password: string }): AclEntry[] {
  return [{ perms: Permission.ALL, scheme: 'digest', id: digestId(auth.user, auth.password) }];
}

/** `acl` made private to `auth`: ALL for its digest, every other entry cut down to READ (or dropped). */
export function tightenedAcl(acl: readonly AclEntry[], auth: { user: string; password: string }): AclEntry[] {
  const owner = digestId(auth.user, auth.password);
  const readers = acl.filter((e) => !(e.scheme === 'digest' && e.id === owner) && (e.perms & Permission.READ) !== 0).map((e) => ({ ...e, perms: Permission.READ }));
  return [{ perms: Permission.ALL, scheme: 'digest', id: owner }, ...readers];
}

export interface AclSession {
  /** The znode's ACL and ACL version; null when it does not exist. */
  get(path: string): Promise<{ acl: AclEntry[]; aversion: number } | null>;
  /** Replaces the ACL if its version is still `aversion`. */
  set(path: string, acl: readonly AclEntry[], aversion: number): Promise<void>;
  close(): void;
}

/** A session authenticated as `auth`, for reading and setting ACLs. */
export async function openAclSession(connectString: string, auth: { user: string; password: string }, timeoutMs: number): Promise<AclSession> {
  const client = zookeeper.createClient(connectString, { sessionTimeout: Math.max(timeoutMs, 4000), retries: 0 });
  client.addAuthInfo('digest', digestAuth(auth.user, auth.password));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      client.close();
      reject(new ConnectionLossError(undefined, `could not connect to ZooKeeper at ${connectString} within ${timeoutMs} ms`, false));
    }, timeoutMs);
    client.once('connected', () => {
      clearTimeout(timer);
      resolve();
    });
    client.connect();
  });
  return {
    get: (path) =>
      new Promise((resolve, reject) =>
        client.getACL(path, (err: unknown, acls?: InstanceType<typeof ACL>[], stat?: { aversion: number }) => {
          if (!err) resolve({ acl: (acls ?? []).map((a) => ({ perms: (a as unknown as { permission: number }).permission, scheme: a.id.scheme, id: a.id.id })), aversion: stat?.aversion ?? 0 });
          else if (codeOf(err) === ZK_CODE.NO_NODE) resolve(null);
          else reject(toZkError(err, path));
        }),
      ),
    set: (path, acl, aversion) =>
      new Promise((resolve, reject) =>
        client.setACL(
          path,
          acl.map((e) => new ACL(e.perms, new Id(e.scheme, e.id))),
          aversion,
          (err: unknown) => (err ? reject(toZkError(err, path)) : resolve()),
        ),
      ),
    close: () => client.close(),
  };
}
