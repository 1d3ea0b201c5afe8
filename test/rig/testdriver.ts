// Test-driver hypervisors for integration tests and benches: a private libvirtd (test driver) per
// node, a held-open libvirt connection (the test driver forgets its state when the last
// connection closes), an in-process daemon config and runner, and helpers to write VMs and read
// their status. (ZooKeeper: ./zookeeper.ts; waiting: ./wait.ts; several nodes with daemons:
// ./cluster.ts, driver 'test'.)
import { indexOps } from '../../core/vm-index.ts';
import { LibvirtConnection } from '../../drivers/libvirt/index.ts';
import { LibvirtHypervisor } from '../../drivers/libvirt-hypervisor.ts';
import type { DaemonConfig } from '../../daemon/config.ts';
import { DaemonConfigSchema } from '../../daemon/config.ts';
import { startDaemon, type RunningDaemon } from '../../daemon/daemon.ts';
import { createLogger } from '../../controllers/logger.ts';
import { ZkStore } from '../../drivers/zk/index.ts';
import { encodeVmSpec, ZkPaths, type VmSpecInput } from '../../schemas/index.ts';
import { startLibvirtd, type Libvirtd } from './libvirtd.ts';

export const paths = new ZkPaths();

export function testXml(name: string, memoryMiB = 64, vcpus = 1, extra = ''): string {
  return `<domain type='test'><name>${name}</name><memory unit='MiB'>${memoryMiB}</memory><vcpu>${vcpus}</vcpu><os><type>hvm</type></os>${extra}</domain>`;
}

export interface HvRig {
  name: string;
  libvirtd: Libvirtd;
  /** Held open so the test driver keeps its domains; also used to look behind the daemon's back. */
  hv: LibvirtHypervisor;
}

export async function startHv(name: string): Promise<HvRig> {
  const libvirtd = await startLibvirtd({ name });
  const hv = await LibvirtHypervisor.open({ socket: libvirtd.socketPath, uri: 'test:///default' });
  // The test driver ships a domain called "test"; remove it so every domain here is ours.
  if (await hv.getDomain('test')) {
    await hv.destroy('test');
    await hv.undefine('test');
  }
  return { name, libvirtd, hv };
}

export async function stopHv(rig: HvRig): Promise<void> {
  await rig.hv.close().catch(() => undefined);
  await rig.libvirtd.cleanup();
}

export function daemonConfig(node: string, zk: string, socket: string, extra: Partial<DaemonConfig> = {}): DaemonConfig {
  return DaemonConfigSchema.parse({
    node,
    zookeeper: { hosts: zk, sessionTimeoutMs: 4000 },
    libvirt: { socket, uri: 'test:///default' },
    logLevel: 'silent',
    // Links (and FRR) are managed only by tests that give the daemon a namespace of their own.
    network: { enabled: false },
    frr: { enabled: false },
    fence: { enabled: false },
    ...extra,
  });
}

export async function runDaemon(cfg: DaemonConfig, actions: string[] = []): Promise<RunningDaemon> {
  return startDaemon(cfg, { log: createLogger({ level: (process.env.VK_TEST_LOG ?? 'silent') as 'silent', node: cfg.node }), onAction: (l) => actions.push(l) });
}

export async function writeVm(store: ZkStore, name: string, spec: VmSpecInput, xml = testXml(name)): Promise<void> {
  await store.ensurePath(paths.vms);
  // As vk writes a VM: with the index entry of its node (core/vm-index.ts).
  await store.multi([
    { op: 'create', path: paths.vm(name) },
    { op: 'create', path: paths.vmSpec(name), data: encodeVmSpec(spec) },
    { op: 'create', path: paths.vmXml(name), data: xml },
    ...(await indexOps(store, paths, name, spec)),
  ]);
}

/** Read-modify-write of a VM spec with CAS; resolves to performance.now() just before the write. */
export async function editSpec(store: ZkStore, name: string, edit: (spec: Record<string, unknown>) => void): Promise<number> {
  const current = await store.get(paths.vmSpec(name));
  if (!current) throw new Error(`no spec for ${name}`);
  const spec = JSON.parse(current.data.toString('utf8')) as Record<string, unknown>;
  edit(spec);
  const data = encodeVmSpec(spec as VmSpecInput);
  const index = await indexOps(store, paths, name, spec as VmSpecInput);
  const t = performance.now();
  await store.multi([{ op: 'set', path: paths.vmSpec(name), data, version: current.version }, ...index]);
  return t;
}

export async function readStatus(store: ZkStore, name: string): Promise<Record<string, unknown> | null> {
  const got = await store.get(paths.vmStatus(name));
  return got ? (JSON.parse(got.data.toString('utf8')) as Record<string, unknown>) : null;
}

export async function domainState(rig: HvRig, name: string): Promise<string | null> {
  return (await rig.hv.getDomain(name))?.state ?? null;
}

export { LibvirtConnection };
