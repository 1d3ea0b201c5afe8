// Public API of the libvirt driver: a pure-TypeScript client of libvirt's RPC protocol.
//
//   const conn = await LibvirtConnection.open({ target: { path: '/run/libvirt/libvirt-sock' }, uri: 'qemu:///system' });
//   conn.lifecycle$.subscribe((e) => …);              // {domain, event, detail, eventName, detailName}
//   conn.state$.subscribe((s) => …);                  // connecting | connected | disconnected | closed
//   const dom = await conn.domainLookupByName('vm1'); // LibvirtError code 42 (ErrorCode.NO_DOMAIN) if missing
//   await conn.domainMigratePerform3Params(dom, 'qemu+tcp://hv2/system', migrateParams({ uri: 'tcp://hv2' }),
//     MigrateFlags.LIVE | MigrateFlags.PEER2PEER | MigrateFlags.PERSIST_DEST | MigrateFlags.UNDEFINE_SOURCE);
//   await conn.close();
//
// Calls made while disconnected reject at once with LibvirtConnectionError; the connection
// reconnects by itself (re-running CONNECT_OPEN and re-registering the lifecycle callback).

export { LibvirtClient, migrateParams } from './client.ts';
export type {
  DomainInfo,
  DomainStateInfo,
  DomainStatsRecord,
  JobStats,
  LibvirtClientOptions,
  MemoryStat,
  MigrateParamsInput,
  NodeInfo,
} from './client.ts';
export { LibvirtConnection } from './connection.ts';
export type { ConnectionState, LibvirtConnectionOptions } from './connection.ts';
export {
  ConnectFlags,
  CreateFlags,
  DefineFlags,
  DestroyFlags,
  DomainEventId,
  DomainState,
  domainStateName,
  DomainStatsTypes,
  DrvFeature,
  JobStatsFlags,
  JobType,
  LifecycleEvent as LifecycleEventType,
  lifecycleDetailName,
  lifecycleEventName,
  ListDomainsFlags,
  MemoryStatTag,
  MigrateFlags,
  MigrateParam,
  Proc,
  ShutdownFlags,
  UndefineFlags,
  XmlFlags,
} from './constants.ts';
export type { DomainStateName, LifecycleEventName } from './constants.ts';
export {
  ErrorCode,
  ErrorLevel,
  isLibvirtError,
  LibvirtAbortedError,
  LibvirtConnectionError,
  LibvirtError,
  LibvirtProtocolError,
  LibvirtTimeoutError,
} from './errors.ts';
export { decodeLifecycle } from './events.ts';
export type { LifecycleEvent } from './events.ts';
export { Transport } from './transport.ts';
export type { CallOptions, KeepaliveOptions, KeepaliveStats, RemoteEvent, RpcChannel, SocketTarget, TransportOptions } from './transport.ts';
export type { Domain, DomainRef } from './types.ts';
export { XdrError } from './xdr.ts';
export type { TypedParam, TypedParamValue } from './xdr.ts';
