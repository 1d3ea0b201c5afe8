// ACLs for znodes this store creates, from the store's AclPolicy and digest credentials.
import { createHash } from 'node:crypto';
import zookeeper from 'node-zookeeper-client';
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
