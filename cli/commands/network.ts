// `vk network add|remove|list`: client networks (a VNI each; VMs attach to bridge vkbr<VNI>).
import { Option, type Command } from 'commander';
import { assertVni, encodeNetworkSpec, NETWORK_TYPES, ValidationError, type NetworkSpecInput, type NetworkType } from '../../schemas/index.ts';
import { bridgeName, readAllNetworks, readAllVms, readNetwork, specVersion } from '../cluster.ts';
import { ensureLayout, parsePositiveInt, withCluster } from '../connect.ts';
import { CliError, usageError, withSource } from '../errors.ts';
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
    .action(async (vniText: string, flags: AddFlags, cmd: Command) => {
      const vni = vniArgument(vniText);
      const spec: NetworkSpecInput = { type: flags.type };
      if (flags.description !== undefined) spec.description = flags.description;
      if (flags.mtu !== undefined) spec.mtu = flags.mtu;
      if (flags.gateway4 !== undefined) spec.gateway4 = flags.gateway4;
      if (flags.gateway6 !== undefined) spec.gateway6 = flags.gateway6;
      if ((flags.dhcp4Start === undefined) !== (flags.dhcp4End === undefined)) throw usageError('give both --dhcp4-start and --dhcp4-end, or neither');
      if (flags.dhcp4Start !== undefined && flags.dhcp4End !== undefined) spec.dhcp4 = { start: flags.dhcp4Start, end: flags.dhcp4End };
      const encoded = withSource(`network ${vni}`, () => encodeNetworkSpec(spec));
      await withCluster(cmd, async (cluster) => {
        const { store, paths } = cluster;
        const existing = await readNetwork(store, paths, vni);
        if (existing.spec || existing.invalidSpec) throw new CliError(`network ${vni} already exists; change it with vk apply`);
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
    .description('delete a network')
    .argument('<vni>', 'network identifier')
    .option('--force', 'remove it even if VMs are attached to its bridge')
    .action(async (vniText: string, flags: { force?: boolean }, cmd: Command) => {
      const vni = vniArgument(vniText);
      await withCluster(cmd, async ({ store, paths }) => {
        const existing = await readNetwork(store, paths, vni);
        const version = specVersion(existing);
        if (version === undefined || !existing.parent) throw new CliError(`network ${vni} not found`);
        const users = (await readAllVms(store, paths)).filter((vm) => vm.xml?.info?.bridges.includes(bridgeName(vni))).map((vm) => vm.name);
        if (users.length > 0 && !flags.force) {
          throw new CliError(`network ${vni} is used by vm ${users.join(', ')}; detach them first or use --force`);
        }
        const children = (await store.children(paths.network(vni))) ?? [];
        if (children.some((c) => c !== 'spec')) throw new CliError(`network ${vni} has unexpected children (${children.join(', ')}); not removing it`);
        await store.multi([
          { op: 'delete', path: paths.networkSpec(vni), version },
          { op: 'delete', path: paths.network(vni), version: existing.parent.version },
        ]);
        println(`network/${vni} removed`);
      });
    });

  network
    .command('list')
    .description('list networks (same as vk get networks)')
    .addOption(outputOption())
    .action(async (flags: GetFlags, cmd: Command) => {
      await withCluster(cmd, async ({ store, paths }) => {
        const [networks, vms] = await Promise.all([readAllNetworks(store, paths), readAllVms(store, paths)]);
        printNetworks(networks, vms, flags.output ?? 'table');
      });
    });
}
