// One simulated hypervisor of the sandbox: a private libvirtd in the node's network namespace,
// and the node's `vk daemon`, both in mount + UTS namespaces of their own where the node's
// directories are bind-mounted over /etc/libvirt, /run/libvirt, /var/lib/libvirt,
// /var/cache/libvirt and /var/log/libvirt and the hostname is the node's name. The daemon stays in
// the host's network namespace (it reaches ZooKeeper on 127.0.0.1) but sees the node's files
// where a real hypervisor has them: the libvirt socket at /run/libvirt/libvirt-sock, serial logs
// under /var/log/libvirt/qemu. The node's FRR (zebra + bgpd, frr.ts) runs in its network
// namespace too; the daemon reaches it through the vty sockets in DIR/<node>/frr. The recipes
// (config, namespaces, readiness) are drivers/launch/, shared with the test rig; here they are
// started detached and recorded in the state file.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { daemonArgv, vkArgv, VK_BIN } from '../launch/daemon.ts';
import { inNode, libvirtdCommand, libvirtdLogTail as libvirtdLogTailOf, libvirtUri, qemuPids, shq, virshUri as socketVirshUri, waitLibvirtd as waitServing, writeLibvirtdConfig } from '../launch/libvirtd.ts';
import { isAlive, refOf, spawnDetached, tailFile, waitServing as waitUntil, type ProcRef } from '../launch/process.ts';
import { LibvirtHypervisor } from '../libvirt-hypervisor.ts';
import { GUEST_IMAGE, writeGuestImage } from './guest-image.ts';
import { HOLDING } from './holder.ts';
import { frrDir, type NodeState, type SandboxDriver } from './state.ts';

export { libvirtUri, VK_BIN };

/** A virsh URI reaching the node's libvirtd from the host. */
export function virshUri(node: NodeState, driver: SandboxDriver): string {
  return socketVirshUri(node.socket, driver);
}

/** Lays out DIR/<node>: private libvirt directories with the sandbox's libvirtd.conf and qemu.conf, the guest disk. */
export function prepareNodeDir(node: NodeState): void {
  rmSync(node.dir, { recursive: true, force: true });
  // TCP without auth for peer-to-peer migration, reachable only on the sandbox fabric.
  writeLibvirtdConfig(node.dir, { comment: 'virtkeeper sandbox node: written by vk sandbox up', listenTcp: true, logFile: '/var/log/libvirt/libvirtd.log' });
  mkdirSync(join(node.dir, 'log', 'qemu'), { recursive: true });
  writeGuestImage(join(node.dir, 'lib', GUEST_IMAGE.slice('/var/lib/libvirt/'.length)));
}

/** libvirtd in the node's network, mount and UTS namespaces, detached. */
export function launchLibvirtd(node: NodeState): ProcRef {
  return spawnDetached(
    libvirtdCommand({
      dir: node.dir,
      hostname: node.name,
      netns: node.netns,
      confFile: '/etc/libvirt/libvirtd.conf',
      pidFile: '/run/libvirt/libvirtd.pid',
      listen: true,
      outFile: join(node.dir, 'libvirtd.out'),
      cwd: node.dir,
    }),
  );
}

const libvirtdLogs = (node: NodeState): string[] => [join(node.dir, 'log', 'libvirtd.log'), join(node.dir, 'libvirtd.out')];

export function waitLibvirtd(node: NodeState, proc: ProcRef, timeoutMs = 30_000): Promise<void> {
  return waitServing({
    what: `libvirtd of ${node.name}`,
    socket: node.socket,
    pid: proc.pid,
    exited: () => (isAlive(proc) ? undefined : 'exited'),
    timeoutMs,
    logFiles: libvirtdLogs(node),
  });
}

export function libvirtdLogTail(node: NodeState, lines = 20): string {
  return libvirtdLogTailOf(libvirtdLogs(node), lines);
}

/** QEMU processes the node's libvirtd started, from its pid files, verified by executable. */
export function qemuProcs(node: NodeState): ProcRef[] {
  return qemuPids(node.dir).flatMap((pid) => refOf(pid) ?? []);
}

export interface DaemonSettings {
  zk: string;
  driver: SandboxDriver;
  /** Reachable on the fabric; live migration comes to this node there (QEMU only). */
  address: string;
  logLevel?: string;
}

/** The daemon's config file, DIR/<node>/virtkeeper.yaml: the same format as on a real hypervisor. */
export function writeDaemonConfig(node: NodeState, s: DaemonSettings): string {
  const config: Record<string, unknown> = {
    node: node.name,
    zookeeper: { hosts: s.zk, sessionTimeoutMs: 10_000 },
    libvirt: { socket: '/run/libvirt/libvirt-sock', uri: libvirtUri(s.driver) },
    // The node's VM bridges live in its network namespace; the daemon runs in the host's.
    netns: node.netns,
    // Its address on the fabric is its cluster address: the daemon makes the example networks'
    // bridges and VXLANs in the node's namespace.
    network: { clusterAddress: s.address },
    // The node's FRR, which `vk sandbox up` started in the node's namespace with everything in
    // DIR/<node>/frr. The daemon reaches it through the vty sockets there (no namespace needed)
    // and runs in the node's UTS namespace, so FRR's hostname is already its own; naming it
    // keeps the config right for a daemon started by hand outside that namespace.
    frr: { confDir: frrDir(node), vtySocket: frrDir(node), runDir: frrDir(node), hostname: node.name },
    // The primary coordinator's dnsmasq (state, logs, leases) of this node: DIR/<node>/primary.
    primary: { runDir: join(node.dir, 'primary') },
    ...(s.driver === 'qemu' ? { migration: { uri: `qemu+tcp://${s.address}/system`, migrateUri: `tcp://${s.address}` } } : {}),
    logLevel: s.logLevel ?? 'info',
  };
  const file = join(node.dir, 'virtkeeper.yaml');
  writeFileSync(file, `# vk daemon config of sandbox node ${node.name} (written by vk sandbox up)\n${toYaml(config)}`);
  return file;
}

/** The environment of the node's processes: no VK_* of the caller's shell may override their config. */
function nodeEnv(): NodeJS.ProcessEnv {
  return { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VK_'))), NO_COLOR: '1' };
}

export function holderLog(node: NodeState): string {
  return join(node.dir, 'holder.log');
}

/**
 * Test driver only: `vk sandbox hold`, which keeps a connection to the node's test driver open
 * for the node's whole life (drivers/sandbox/holder.ts). It needs no namespace: it reaches
 * libvirtd through the socket's path on the host.
 */
export function launchHolder(node: NodeState): ProcRef {
  return spawnDetached({ argv: vkArgv('sandbox', 'hold', '--socket', node.socket, '--uri', libvirtUri('test')), logFile: holderLog(node), cwd: node.dir, env: nodeEnv() });
}

/** Waits until the holder says it holds its connection (a line of its log naming its PID). */
export function waitHolder(node: NodeState, proc: ProcRef, timeoutMs = 30_000): Promise<void> {
  const line = new RegExp(`${HOLDING} .* \\(pid ${proc.pid},`);
  return waitUntil({
    what: `the test-driver holder of ${node.name} (pid ${proc.pid})`,
    exited: () => (isAlive(proc) ? undefined : 'exited'),
    serving: () => line.test(tailFile(holderLog(node), 50)),
    timeoutMs,
    pollMs: 50,
    logs: () => tailFile(holderLog(node)),
  });
}

/** `vk daemon --config FILE` in the node's mount and UTS namespaces (the host's network), detached. */
export function launchDaemon(node: NodeState, configFile: string): ProcRef {
  return spawnDetached({
    argv: inNode({ dir: node.dir, hostname: node.name }, daemonArgv(configFile).map(shq).join(' ')),
    logFile: join(node.dir, 'daemon.log'),
    cwd: node.dir,
    // The config file says everything: no VK_* of the caller's shell may override it.
    env: nodeEnv(),
  });
}

/**
 * The test driver starts with a domain called "test" (8 GiB, running). It is not the cluster's, so
 * the daemon leaves it alone; remove it so node statistics and `virsh list` show only cluster VMs.
 * Call this while the node's holder runs: the test driver's state lives only as long as some
 * connection is open, and would come back with "test" after the last one closed.
 */
export async function removeTestDomain(node: NodeState): Promise<boolean> {
  const hv = await LibvirtHypervisor.open({ socket: node.socket, uri: 'test:///default' });
  try {
    const d = await hv.getDomain('test');
    if (!d) return false;
    if (d.state !== 'shutoff') await hv.destroy('test');
    await hv.undefine('test');
    return true;
  } finally {
    await hv.close();
  }
}
