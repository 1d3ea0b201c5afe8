// `vk daemon`: wires the store, the hypervisor, the domain, migration, flush and node concerns
// (reconcilers/<concern>/) and the node's ephemeral marker.
import type { Logger } from 'pino';
import { LibvirtHypervisor } from '../drivers/libvirt-hypervisor.ts';
import { bridgeExists } from '../drivers/links.ts';
import type { Hypervisor } from '../drivers/hypervisor.ts';
import { describeDomainAction } from '../reconcilers/domain/plan.ts';
import { ZkPaths } from '../schemas/index.ts';
import { AliveMarker } from './alive.ts';
import type { DaemonConfig } from './config.ts';
import { FlushController } from '../reconcilers/flush/controller.ts';
import { createLogger } from '../controllers/logger.ts';
import { MigrationController } from '../reconcilers/migration/controller.ts';
import type { MigrationEvent } from '../reconcilers/migration/execute.ts';
import { DomainController } from '../reconcilers/domain/controller.ts';
import { NodeServices } from '../reconcilers/node/controller.ts';
import { ZkStore } from '../drivers/zk/index.ts';

export const DAEMON_VERSION = '0.1.0';

export interface RunningDaemon {
  controller: DomainController;
  migrations: MigrationController;
  /** Node flush / ready (reconcilers/flush/controller.ts). */
  flush: FlushController;
  store: ZkStore;
  hv: Hypervisor;
  log: Logger;
  stop(): Promise<void>;
}

export interface DaemonDeps {
  log?: Logger;
  onAction?(line: string): void;
  /** Lets benchmarks observe driver calls (e.g. the instant a domain start is issued). */
  wrapHypervisor?(hv: Hypervisor): Hypervisor;
  /** Migration events (requested, started, completed, aborted, failed, refused). */
  onMigrationEvent?(event: MigrationEvent): void;
  /** performance.now() at the instant a migration's ABORT_JOB is sent (bench/migration.ts). */
  onAbortIssued?(vm: string, atMs: number): void;
}

async function connect(cfg: DaemonConfig, log: Logger): Promise<{ store: ZkStore; hv: LibvirtHypervisor; paths: ZkPaths }> {
  const paths = new ZkPaths(cfg.zookeeper.root);
  const auth = cfg.zookeeper.auth ? splitAuth(cfg.zookeeper.auth) : undefined;
  const store = await ZkStore.connect({
    connectString: cfg.zookeeper.hosts,
    sessionTimeoutMs: cfg.zookeeper.sessionTimeoutMs,
    ...(auth ? { auth } : {}),
    logger: log,
  });
  try {
    const hv = await LibvirtHypervisor.open({ socket: cfg.libvirt.socket, uri: cfg.libvirt.uri });
    return { store, hv, paths };
  } catch (error) {
    await store.close();
    throw error;
  }
}

export async function startDaemon(cfg: DaemonConfig, deps: DaemonDeps = {}): Promise<RunningDaemon> {
  const log = deps.log ?? createLogger({ level: cfg.logLevel, node: cfg.node });
  const { store, hv: realHv, paths } = await connect(cfg, log);
  const hv = deps.wrapHypervisor ? deps.wrapHypervisor(realHv) : realHv;
  for (const path of [paths.vms, paths.nodes, paths.node(cfg.node)]) await store.ensurePath(path);
  const alive = new AliveMarker(
    store,
    paths.nodeAlive(cfg.node),
    () =>
      JSON.stringify({
        pid: process.pid,
        version: DAEMON_VERSION,
        since: new Date().toISOString(),
        // How peers reach this node for live migration (reconcilers/migration/controller.ts).
        ...(cfg.migration.uri && cfg.migration.migrateUri ? { migration: { uri: cfg.migration.uri, migrateUri: cfg.migration.migrateUri } } : {}),
      }),
    log,
  );
  await alive.start();
  const controller = new DomainController({
    node: cfg.node,
    store,
    paths,
    hv,
    log,
    concurrency: cfg.concurrency,
    resyncMs: cfg.resyncMs,
    ...(deps.onAction ? { onAction: deps.onAction } : {}),
    onMigrate: (vm) => migrations?.kick(vm),
  });
  let migrations: MigrationController | undefined;
  await controller.start();
  migrations = new MigrationController({
    node: cfg.node,
    store,
    paths,
    hv: realHv,
    informer: controller.informer,
    log,
    // One resync interval for the node: the config's resyncMs governs both controllers.
    resyncMs: cfg.resyncMs,
    ...(cfg.migration.bandwidthMiBs !== undefined ? { bandwidthMiBs: cfg.migration.bandwidthMiBs } : {}),
    bridgeExists: (name: string) => bridgeExists(name, cfg.netns),
    ...(deps.onAction ? { onAction: deps.onAction } : {}),
    ...(deps.onMigrationEvent ? { onEvent: deps.onMigrationEvent } : {}),
    ...(deps.onAbortIssued ? { onAbortIssued: deps.onAbortIssued } : {}),
  });
  await migrations.start();
  const runningMigrations = migrations;
  const services = new NodeServices({
    node: cfg.node,
    version: DAEMON_VERSION,
    store,
    paths,
    hv: realHv,
    informer: controller.informer,
    log,
    keepaliveMs: cfg.keepaliveMs,
    consolePollMs: cfg.consolePollMs,
    consoleLines: cfg.consoleLines,
  });
  services.start();
  // After the keepalive: the flush controller edits the node status the keepalive creates.
  const flush = new FlushController({ node: cfg.node, store, paths, informer: controller.informer, log, ...(deps.onAction ? { onAction: deps.onAction } : {}) });
  flush.start();
  log.info({ zk: cfg.zookeeper.hosts, libvirt: cfg.libvirt.socket }, 'daemon running');
  return {
    controller,
    migrations: runningMigrations,
    flush,
    store,
    hv,
    log,
    async stop() {
      await flush.stop();
      alive.stop();
      await services.stop();
      await runningMigrations.stop();
      await controller.stop();
      await hv.close();
      await store.close();
      log.info('daemon stopped');
    },
  };
}

/**
 * What the node would do now, one action per line; changes nothing. `moreLines` adds what other
 * planners predict from the same ZooKeeper session (the CLI passes the flush/ready moves).
 */
export async function planNode(
  cfg: DaemonConfig,
  log: Logger,
  moreLines?: (store: ZkStore, paths: ZkPaths, node: string) => Promise<string[]>,
): Promise<string[]> {
  const { store, hv, paths } = await connect(cfg, log);
  try {
    const controller = new DomainController({ node: cfg.node, store, paths, hv, log });
    controller.informer.start();
    await controller.informer.synced();
    const names = new Set(controller.informer.names());
    for (const d of await hv.listDomains()) names.add(d.name);
    const lines: string[] = [];
    for (const vm of [...names].sort()) {
      const actions = await controller.planFor(vm);
      for (const action of actions ?? []) lines.push(describeDomainAction(cfg.node, vm, action));
    }
    controller.informer.stop();
    if (moreLines) lines.push(...(await moreLines(store, paths, cfg.node)));
    return lines;
  } finally {
    await hv.close();
    await store.close();
  }
}

function splitAuth(auth: string): { user: string; password: string } {
  const at = auth.indexOf(':');
  return { user: auth.slice(0, at), password: auth.slice(at + 1) };
}
