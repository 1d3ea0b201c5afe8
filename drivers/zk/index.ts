// virtkeeper's ZooKeeper store: promise API, typed errors, level-triggered watch streams,
// connection/session state with client-side expiry, compare-and-set. See store.ts, watch.ts, connection-state.ts, cas.ts.
export { ZkStore } from './store.ts';
export type {
  AclPolicy,
  ChildrenState,
  ConnectionState,
  CreateMode,
  DataState,
  Op,
  OpResult,
  Versioned,
  ZkStat,
  ZkStoreOptions,
} from './types.ts';
export {
  ConnectionLossError,
  NoAuthError,
  NoNodeError,
  NodeExistsError,
  NotEmptyError,
  SessionExpiredError,
  TransactionError,
  VersionConflictError,
  ZkError,
} from './errors.ts';
export { digestId } from './acl.ts';
export { ancestorsAndSelf, childPath, parentOf } from './paths.ts';
export { CAS_ATTEMPTS, CasConflictError, compareAndSet, NO_CHANGE } from './cas.ts';
export type { CasOutcome, CasSnapshot, NoChange, ReadCas, ZnodeCas } from './cas.ts';
