// `vk daemon`: connects the drivers, builds the Manager with its shared informers, registers the
// node's concerns (CONCERNS, in start order) and the node's ephemeral alive marker.
//
// Start: the alive marker first (peers see this daemon), then the informers sync, then each
// concern in CONCERNS order; stop: the reverse. `planNode` (vk daemon --dry-run, vk plan --node)
// builds the same manager with the same list and asks every concern for its plan instead.
import { INDEX_SCHEMA_VERSION, migrateToIndex } from '../core/vm-index.ts';
import type { Logger } from 'pino';
import { LibvirtHypervisor } from '../drivers/libvirt-hypervisor.ts';
import { bridgeExists } from '../drivers/links.ts';
import type { MigratingHypervisor } from '../drivers/hypervisor.ts';
import { ZkPaths } from '../schemas/index.ts';
import { AliveMarker } from './alive.ts';
import type { DaemonConfig } from './config.ts';
import { createLogger } from '../controllers/logger.ts';
import type { Controller } from '../controllers/controller.ts';
import { Manager } from '../controllers/manager.ts';
import type { MigrationEvent } from '../reconcilers/migration/execute.ts';
import * as domain from '../reconcilers/domain/index.ts';
import * as migration from '../reconcilers/migration/index.ts';
import * as node from '../reconcilers/node/index.ts';
import * as flush from '../reconcilers/flush/index.ts';
import * as network from '../reconcilers/network/index.ts';
import * as frr from '../reconcilers/frr/index.ts';
import * as primary from '../reconcilers/primary/index.ts';
import * as rbd from '../reconcilers/rbd/index.ts';
import * as fence from '../reconcilers/fence/index.ts';
import { SelfFence } from '../reconcilers/fence/self-fence.ts';
import { createCommandFencer, createIpmiFencer } from '../drivers/fence/index.ts';
import { createRbdDriver } from '../drivers/rbd/index.ts';
import { announce, applyGatewayLines, observeGateways } from '../drivers/gateway/index.ts';
import { createDnsmasqDriver } from '../drivers/dnsmasq/index.ts';
import { createFrrDriver } from '../drivers/frr/index.ts';
import { hostname } from 'node:os';
import { applyBatch, observeLinks, probeVlan, setSysctls, watchLinks } from '../drivers/net/ip.ts';
import type { FlushController } from '../reconcilers/flush/controller.ts';
import { ZkStore } from '../drivers/zk/index.ts';

export const DAEMON_VERSION = '0.1.0';

export interface DaemonDeps {
  log?: Logger;
  onAction?(line: string): void;
  /** Lets benchmarks observe driver calls (e.g. the instant a domain start is issued). */
  wrapHypervisor?<T extends MigratingHypervisor>(hv: T): T;
  /** Migration events (requested, started, completed, aborted, failed, refused). */
  onMigrationEvent?(event: MigrationEvent): void;
  /** performance.now() at the instant a migration's ABORT_JOB is sent (bench/migration.ts). */
  onAbortIssued?(vm: string, atMs: number): void;
  /** Fence events (besides the events log). */
  onFenceEvent?(event: fence.FenceEvent): void;
}

/** The node's concerns, in start order (stopped in reverse). Adding a concern is one line here. */
const CONCERNS: ReadonlyArray<(m: Manager, cfg: DaemonConfig, deps: DaemonDeps) => void> = [
  // First: the bridges VMs plug into.
  (m, cfg, deps) => cfg.network.enabled && network.register(m, networkOptions(cfg, deps)),
  // After the links: zebra learns the VNIs from the VXLANs the network concern makes.
  (m, cfg, deps) => cfg.frr.enabled && frr.register(m, frrOptions(cfg, deps)),
  // After the links: the gateways sit on the bridges the network concern makes.
  (m, cfg, deps) => cfg.network.enabled && cfg.primary.enabled && primary.register(m, primaryOptions(cfg, deps)),
  // Before the domain concern: its verdicts gate the starts of VMs with RBD disks.
  (m, cfg, deps) => cfg.rbd.enabled && rbd.register(m, rbdOptions(cfg, deps)),
  (m, cfg, deps) => domain.register(m, { concurrency: cfg.concurrency, resyncMs: cfg.resyncMs, fullResyncEvery: cfg.fullResyncEvery, indexReleaseAfterMs: cfg.indexReleaseAfterMs, networkGate: cfg.network.enabled, rbdGate: cfg.rbd.enabled, ...hooks(deps) }),
  (m, cfg, deps) =>
    migration.register(m, {
      // One resync interval for the node: the config's resyncMs governs both VM controllers.
      resyncMs: cfg.resyncMs,
      fullResyncEvery: cfg.fullResyncEvery,
      ...(cfg.migration.bandwidthMiBs !== undefined ? { bandwidthMiBs: cfg.migration.bandwidthMiBs } : {}),
      bridgeExists: (name: string) => bridgeExists(name, cfg.netns),
      networkGate: cfg.network.enabled,
      rbdGate: cfg.rbd.enabled,
      ...hooks(deps),
      ...(deps.onMigrationEvent ? { onEvent: deps.onMigrationEvent } : {}),
      ...(deps.onAbortIssued ? { onAbortIssued: deps.onAbortIssued } : {}),
    }),
  (m, cfg) =>
    node.register(m, { version: DAEMON_VERSION, keepaliveMs: cfg.keepaliveMs, consolePollMs: cfg.consolePollMs, consoleLines: cfg.consoleLines }),
  // After the node concern: the flush edits the node status the keepalive creates.
  (m, _cfg, deps) => flush.register(m, hooks(deps)),
  // Last: it acts on other nodes only, from what every other concern reports.
  (m, cfg, deps) => cfg.fence.enabled && fence.register(m, fenceOptions(cfg, deps)),
  (m, cfg, deps) =>
    cfg.fence.selfFenceAfterMs !== undefined &&
    m.add(new SelfFence(m, { afterMs: cfg.fence.selfFenceAfterMs, sessionTimeoutMs: cfg.zookeeper.sessionTimeoutMs, ...hooks(deps) })),
];

function fenceOptions(cfg: DaemonConfig, deps: DaemonDeps): fence.FenceControllerOptions {
  const storage = cfg.rbd.enabled ? rbdDriverOf(cfg) : undefined;
  return {
    effects: {
      async powerOff(s) {
        const bmc = createIpmiFencer({ host: s.host, port: s.port, user: s.user, password: s.password, cipherSuite: s.cipherSuite, timeoutMs: s.timeoutMs, retries: s.retries, verifyTimeoutMs: s.verifyTimeoutMs, ipmitool: cfg.fence.ipmitool });
        await bmc.powerOff();
        if (s.powerOnAfter) await bmc.powerOn();
      },
      async runCommand(s, node) {
        await createCommandFencer({ command: s.argv ?? s.shell!, node, timeoutMs: s.timeoutMs, retries: s.retries, ...(s.env ? { env: s.env } : {}) }).fence();
      },
      storage: storage !== undefined,
      async blocklistAdd(address, ttlS) {
        if (!storage) throw new Error('no Ceph access (rbd.enabled is false)');
        await storage.blocklistAdd(address, ttlS);
      },
      async blocklistRemove(address) {
        if (!storage) throw new Error('no Ceph access (rbd.enabled is false)');
        await storage.blocklistRemove(address);
      },
      async breakLocks(image, opts) {
        if (!storage) return [];
        const locks = await storage.listLocks(image);
        for (const lock of locks) await storage.removeLock(image, lock, { blocklist: opts.blocklistClients });
        return locks.map((l) => `${l.locker} ${l.address}`);
      },
    },
    resyncMs: cfg.fence.resyncMs,
    ...(deps.onFenceEvent ? { onEvent: deps.onFenceEvent } : {}),
    ...hooks(deps),
  };
}

function networkOptions(cfg: DaemonConfig, deps: DaemonDeps): network.NetworkControllerOptions {
  // The node's links live in the daemon's namespace, or in the one the config names (the sandbox).
  const where = cfg.netns !== undefined ? { netns: cfg.netns } : {};
  return {
    links: {
      observe: () => observeLinks(where),
      applyBatch: (lines) => applyBatch(lines, where),
      setSysctls: (values) => setSysctls(values, where),
      probeVlan: () => probeVlan(where),
    },
    linkEvents: watchLinks(where),
    group: cfg.network.group,
    ...(cfg.network.clusterAddress !== undefined ? { clusterAddress: cfg.network.clusterAddress } : {}),
    ...(cfg.network.clusterDevice !== undefined ? { clusterDevice: cfg.network.clusterDevice } : {}),
    resyncMs: cfg.resyncMs,
    ...hooks(deps),
  };
}

function frrOptions(cfg: DaemonConfig, deps: DaemonDeps): frr.FrrControllerOptions {
  const f = cfg.frr;
  return {
    driver: createFrrDriver({
      confDir: f.confDir,
      vtySocket: f.vtySocket,
      runDir: f.runDir,
      binDir: f.binDir,
      reloadScript: f.reloadScript,
      timeoutMs: f.timeoutMs,
      ...(f.hostname !== undefined ? { hostname: f.hostname } : {}),
    }),
    hostname: f.hostname ?? hostname(),
    ...(cfg.network.clusterAddress !== undefined ? { fallbackAddress: cfg.network.clusterAddress } : {}),
    resyncMs: f.resyncMs,
    ...hooks(deps),
  };
}

function primaryOptions(cfg: DaemonConfig, deps: DaemonDeps): primary.PrimaryControllerOptions {
  const p = cfg.primary;
  const gw = { group: p.group, ...(cfg.netns !== undefined ? { netns: cfg.netns } : {}) };
  return {
    effects: {
      observeGateways: () => observeGateways(gw),
      applyGatewayLines: (lines, notAfterMs) => applyGatewayLines(lines, gw, notAfterMs),
      announce: (device, address) => announce(device, address, { ...gw, binary: p.arping }),
      setSysctls: (values) => setSysctls(values, cfg.netns !== undefined ? { netns: cfg.netns } : {}),
      dhcp: createDnsmasqDriver({ runDir: p.runDir, binary: p.dnsmasq, ...(cfg.netns !== undefined ? { netns: cfg.netns } : {}) }),
    },
    group: p.group,
    barrierMs: p.barrierMs,
    leaseTimeS: p.leaseTimeS,
    ...hooks(deps),
  };
}

/** The `rbd`/`ceph` driver as the daemon's `rbd` settings say (the RBD concern's, and the fencer's storage level). */
function rbdDriverOf(cfg: DaemonConfig) {
  const r = cfg.rbd;
  const netns = r.netns ?? cfg.netns;
  return createRbdDriver({
    ...(r.conf !== undefined ? { conf: r.conf } : {}),
    ...(r.id !== undefined ? { id: r.id } : {}),
    ...(r.keyring !== undefined ? { keyring: r.keyring } : {}),
    ...(netns !== undefined ? { netns } : {}),
    mountTimeoutS: r.mountTimeoutS,
    callTimeoutMs: r.callTimeoutMs,
  });
}

function rbdOptions(cfg: DaemonConfig, deps: DaemonDeps): rbd.RbdControllerOptions {
  const r = cfg.rbd;
  return {
    driver: rbdDriverOf(cfg),
    // config.ts refuses rbd.enabled without it.
    storageAddress: r.storageAddress!,
    probeMs: r.probeMs,
    ...hooks(deps),
  };
}

function hooks(deps: DaemonDeps): { onAction?(line: string): void } {
  return deps.onAction ? { onAction: deps.onAction } : {};
}

export interface RunningDaemon {
  manager: Manager;
  domain: Controller<string>;
  migration: Controller<string>;
  /** Node flush / ready (reconcilers/flush/). */
  flush: FlushController;
  store: ZkStore;
  hv: MigratingHypervisor;
  log: Logger;
  stop(): Promise<void>;
}

async function buildManager(cfg: DaemonConfig, log: Logger, deps: DaemonDeps, following: 'index' | 'all' = 'index'): Promise<Manager> {
  const paths = new ZkPaths(cfg.zookeeper.root);
  const auth = cfg.zookeeper.auth ? splitAuth(cfg.zookeeper.auth) : undefined;
  const store = await ZkStore.connect({
    connectString: cfg.zookeeper.hosts,
    sessionTimeoutMs: cfg.zookeeper.sessionTimeoutMs,
    ...(auth ? { auth } : {}),
    logger: log,
  });
  let realHv: LibvirtHypervisor;
  try {
    realHv = await LibvirtHypervisor.open({ socket: cfg.libvirt.socket, uri: cfg.libvirt.uri });
  } catch (error) {
    await store.close();
    throw error;
  }
  const hv = deps.wrapHypervisor ? deps.wrapHypervisor(realHv) : realHv;
  const manager = new Manager({
    node: cfg.node,
    store,
    paths,
    hv,
    log,
    close: async () => {
      await hv.close();
      await store.close();
    },
    // A daemon follows its node's index of VMs (core/vm-index.ts); a dry run reads every VM (it may run before any index).
    vms: following === 'index' ? { node: cfg.node, indexScanMs: cfg.indexScanMs } : {},
  });
  for (const register of CONCERNS) register(manager, cfg, deps);
  return manager;
}

export async function startDaemon(cfg: DaemonConfig, deps: DaemonDeps = {}): Promise<RunningDaemon> {
  const log = deps.log ?? createLogger({ level: cfg.logLevel, node: cfg.node });
  const manager = await buildManager(cfg, log, deps);
  const { store, paths } = manager;
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
  try {
    for (const path of [paths.vms, paths.nodes, paths.node(cfg.node), paths.nodeVms(cfg.node)]) await store.ensurePath(path);
    // A cluster from before the index (schema version 1): build it first, so this daemon finds its VMs.
    const migrated = await migrateToIndex(store, paths);
    if (migrated) log.warn({ added: migrated.added.length, vms: migrated.vms }, `schema: upgraded ${paths.schema} to version ${INDEX_SCHEMA_VERSION} (the per-node VM index: ${migrated.added.length} entries)`);
    await alive.start();
    await manager.start();
  } catch (error) {
    alive.stop();
    await manager.stop();
    throw error;
  }
  log.info({ zk: cfg.zookeeper.hosts, libvirt: cfg.libvirt.socket }, 'daemon running');
  return {
    manager,
    domain: manager.get<Controller<string>>('domain'),
    migration: manager.get<Controller<string>>('migration'),
    flush: manager.get<FlushController>('flush'),
    store,
    hv: manager.hv,
    log,
    async stop() {
      await manager.stop();
      log.info('daemon stopped');
    },
  };
}

/**
 * What the node would do now, one action per line, from every registered concern (the same list
 * the daemon runs); changes nothing.
 */
export async function planNode(cfg: DaemonConfig, log: Logger): Promise<string[]> {
  const manager = await buildManager(cfg, log, {}, 'all');
  try {
    return await manager.plan();
  } finally {
    await manager.stop();
  }
}

function splitAuth(auth: string): { user: string; password: string } {
  const at = auth.indexOf(':');
  return { user: auth.slice(0, at), password: auth.slice(at + 1) };
}
