// `vk network add|remove|list`: client networks (a VNI each; VMs attach to bridge vkbr<VNI>).
import { Option, type Command } from 'commander';
import { assertVni, NETWORK_TYPES, ValidationError, type NetworkSpecInput, type NetworkType } from '../../schemas/index.ts';
import { createNetwork, removeNetwork } from '../../core/network.ts';
import { bridgeName, listNodeNames, readAllNetworks, readAllVms } from '../cluster.ts';
import { parsePositiveInt, withCluster } from '../connect.ts';
import { usageError } from '../errors.ts';
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
      await withCluster(cmd, async (cluster) => {
        await createNetwork(cluster, vni, spec);
        println(`network/${vni} created (bridge ${bridgeName(vni)})`);
      });
    });

  network
    .command('remove')
    .description('delete a network and everything under it (refused while a VM attaches to its bridge)')
    .argument('<vni>', 'network identifier')
    .action(async (vniText: string, _flags: unknown, cmd: Command) => {
      const vni = vniArgument(vniText);
      await withCluster(cmd, async (cluster) => {
        await removeNetwork(cluster, vni);
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

