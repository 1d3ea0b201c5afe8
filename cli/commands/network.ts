// `vk network add|remove|list`: client networks (a VNI each; VMs attach to bridge vkbr<VNI>).
import { Option, type Command } from 'commander';
import { ZkError, type Op, type ZkStore } from '../../drivers/zk/index.ts';
import { MAX_TRANSACTION_BYTES, transactionBytes } from '../objects.ts';
import {
  API_VERSION,
  assertVni,
  decodeNetworkSpec,
  encodeNetworkSpec,
  NETWORK_TYPES,
  networkVniProblem,
  ValidationError,
  type NetworkSpecInput,
  type NetworkType,
  type ZkPaths,
} from '../../schemas/index.ts';
import { bridgeName, listNodeNames, readAllNetworks, readAllVms, readNetwork, specVersion } from '../cluster.ts';
import { ensureLayout, parsePositiveInt, withCluster } from '../connect.ts';
import { CliError, usageError, withSource } from '../errors.ts';
import { checkAgainstCluster, checkNetworkRemoval, readClusterView, type DesiredObject } from '../manifests.ts';
import { println } from '../output.ts';
import { outputOption, printNetworks, type GetFlags } from './get.ts';

interface AddFlags {
  type: NetworkType;
  description?: string;
  mtu?: number;
  gateway4?: string;
  gateway6?: string;
  dhcp4Start?: string;
  dhcp4End?: string;
  domain?: string;
}

function vniArgument(text: string): string {
  try {
    return assertVni(text, 'VNI');
  } catch (error) {
    if (error instanceof ValidationError) throw usageError(error.message);
    throw error;
  }
}

export function registerNetwork(program: Command): void {
  const network = program.command('network').description('manage client networks (VXLAN/vLAN + bridge vkbr<VNI> on every node)');

  network
    .command('add')
    .description('create a network')
    .argument('<vni>', 'network identifier (1-16777215); its bridge is vkbr<VNI>')
    .addOption(new Option('--type <type>', 'bridged: a vLAN on the bridge device; managed: a VXLAN with gateway and DHCP').choices(NETWORK_TYPES).makeOptionMandatory())
    .option('--description <text>', 'free text')
    .option('--mtu <bytes>', 'MTU of the bridge (default 1500)', parsePositiveInt)
    .option('--gateway4 <cidr>', 'managed only: IPv4 gateway with prefix, e.g. 192.0.2.1/24')
    .option('--gateway6 <cidr>', 'managed only: IPv6 gateway with prefix, e.g. 2001:db8::1/64')
    .option('--dhcp4-start <ip>', 'managed only: first address of the DHCP range')
    .option('--dhcp4-end <ip>', 'managed only: last address of the DHCP range')
    .option('--domain <name>', "managed only, with --gateway4: DNS domain the primary's dnsmasq answers for, e.g. tenant.example")
    .action(async (vniText: string, flags: AddFlags, cmd: Command) => {
      const vni = vniArgument(vniText);
      const spec: NetworkSpecInput = { type: flags.type };
      if (flags.description !== undefined) spec.description = flags.description;
      if (flags.mtu !== undefined) spec.mtu = flags.mtu;
      if (flags.gateway4 !== undefined) spec.gateway4 = flags.gateway4;
      if (flags.gateway6 !== undefined) spec.gateway6 = flags.gateway6;
      if ((flags.dhcp4Start === undefined) !== (flags.dhcp4End === undefined)) throw usageError('give both --dhcp4-start and --dhcp4-end, or neither');
      if (flags.dhcp4Start !== undefined && flags.dhcp4End !== undefined) spec.dhcp4 = { start: flags.dhcp4Start, end: flags.dhcp4End };
      if (flags.domain !== undefined) spec.domain = flags.domain;
      const source = `network ${vni}`;
      const encoded = withSource(source, () => encodeNetworkSpec(spec));
      const decoded = decodeNetworkSpec(encoded);
      const vniProblem = networkVniProblem(decoded.type, vni);
      if (vniProblem) throw new ValidationError('vni', Number(vni), vniProblem, { kind: 'VNI', source });
      // The object vk apply would write for the same network: the same cluster checks (MTU against the config in force).
      const obj: DesiredObject = { kind: 'Network', name: vni, source, spec: decoded, manifest: { apiVersion: API_VERSION, kind: 'Network', metadata: { name: vni }, spec: decoded } };
      await withCluster(cmd, async (cluster) => {
        const { store, paths } = cluster;
        const existing = await readNetwork(store, paths, vni);
        if (existing.spec || existing.invalidSpec) throw new CliError(`network ${vni} already exists; change it with vk apply`);
        checkAgainstCluster([obj], await readClusterView(store, paths, [obj]));
        await ensureLayout(cluster, [paths.networkSpec(vni)]);
        await store.multi([
          ...(existing.parent ? [] : [{ op: 'create' as const, path: paths.network(vni) }]),
          { op: 'create' as const, path: paths.networkSpec(vni), data: encoded },
        ]);
        println(`network/${vni} created (bridge ${bridgeName(vni)})`);
      });
    });

  network
    .command('remove')
    .description('delete a network and everything under it (refused while a VM attaches to its bridge)')
    .argument('<vni>', 'network identifier')
    .action(async (vniText: string, _flags: unknown, cmd: Command) => {
      const vni = vniArgument(vniText);
      await withCluster(cmd, async ({ store, paths }) => {
        await removeNetwork(store, paths, vni, async () => {
          const existing = await readNetwork(store, paths, vni);
          if (specVersion(existing) === undefined || !existing.parent) throw new CliError(`network ${vni} not found`);
          checkNetworkRemoval(vni, await readAllVms(store, paths));
        });
        println(`network/${vni} removed`);
      });
    });

  network
    .command('list')
    .description('list networks (same as vk get networks)')
    .addOption(outputOption())
    .action(async (flags: GetFlags, cmd: Command) => {
      await withCluster(cmd, async ({ store, paths }) => {
        const [networks, vms, nodes] = await Promise.all([readAllNetworks(store, paths, { status: true, leases: true }), readAllVms(store, paths), listNodeNames(store, paths)]);
        printNetworks(networks, vms, nodes, flags.output ?? 'table');
      });
    });
}

/** Every znode under `path` (included), deepest first, with the version read: the delete ops of the subtree. */
async function subtreeDeletes(store: ZkStore, path: string): Promise<Op[] | null> {
  const stat = await store.exists(path);
  if (!stat) return null;
  const children = (await store.children(path)) ?? [];
  const below = await Promise.all(children.map((child) => subtreeDeletes(store, `${path}/${child}`)));
  return [...below.flatMap((ops) => ops ?? []), { op: 'delete', path, version: stat.version }];
}

const REMOVE_ATTEMPTS = 5;

/**
 * Deletes the network's whole subtree (spec, the daemons' status, the primary's DHCP leases,
 * anything else under it) in one multi with the versions read, after `check` (which throws to
 * refuse) has passed on the same read. A daemon writing in between makes the multi fail: read,
 * check and try again. Leases too many for one ZooKeeper request (a large DHCP range) are deleted
 * first, in chunks: they are the primary's records of the network being removed, and the spec and
 * status still go in one transaction.
 */
async function removeNetwork(store: ZkStore, paths: ZkPaths, vni: string, check: () => Promise<void>): Promise<void> {
  const path = paths.network(vni);
  let leasesFirst = false;
  for (let attempt = 1; attempt <= REMOVE_ATTEMPTS; attempt++) {
    await check();
    const ops = await subtreeDeletes(store, path);
    if (!ops) continue;
    if (transactionBytes(ops) > MAX_TRANSACTION_BYTES && !leasesFirst) {
      leasesFirst = true;
      await store.deleteRecursive(paths.networkLeases(vni));
      continue;
    }
    try {
      await store.multi(ops);
      return;
    } catch (error) {
      if (!(error instanceof ZkError) || !['BAD_VERSION', 'NO_NODE', 'NOT_EMPTY', 'NODE_EXISTS'].includes(error.code)) throw error;
    }
  }
  const removed = leasesFirst ? 'only its DHCP leases were removed' : 'nothing was removed';
  throw new CliError(`${path} kept changing while being removed; gave up after ${REMOVE_ATTEMPTS} attempts (${removed})`);
}
