// `vk sandbox vm-side NODE --network N`: a VM side for the tour, without a VM: a namespace whose
// eth0 (a veth) is plugged into the node's vkbr<N>, and one DHCP exchange (busybox udhcpc, which
// quits once it holds a lease) with the primary coordinator's dnsmasq, across the VXLAN. The
// namespace is recorded in the sandbox state before it is made, so `down` removes it.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addNetns, deleteNetns, ip, netnsExists } from '../launch/netns.ts';
import { writeState, type SandboxState } from './state.ts';

export interface VmSide {
  netns: string;
  node: string;
  vni: number;
  ip: string;
  router: string;
  serverId: string;
  lease: number;
}

// udhcpc's script: applies the lease, and writes what it got for the CLI (values are the server's: quoted).
const SCRIPT = `#!/bin/sh
out="$(dirname "$0")/lease-$(ip -o link show dev "$interface" | sed -n 's/.*link\\/ether \\([0-9a-f:]*\\).*/\\1/p')"
case "$1" in
  deconfig) ip addr flush dev "$interface" ;;
  bound|renew)
    ip addr replace "$ip/\${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route replace default via "\${router%% *}" dev "$interface"
    printf '%s %s %s %s\\n' "$ip" "\${router%% *}" "\${serverid:-}" "\${lease:-0}" > "$out" ;;
esac
exit 0
`;

/** The namespace of the VM side of `node` on network `vni`. */
export const vmSideNetns = (state: SandboxState, node: string, vni: number): string => `${state.prefix}v${vni}${node}`;

/** Makes (or makes anew) the VM side and takes a lease; throws with udhcpc's output when none comes. */
export function plugVmSide(state: SandboxState, node: string, vni: number, mtu: number): VmSide {
  const n = state.nodes.find((x) => x.name === node);
  if (!n) throw new Error(`no node ${node}`);
  const netns = vmSideNetns(state, node, vni);
  const dir = join(state.dir, 'vm-sides');
  mkdirSync(dir, { recursive: true });
  const script = join(dir, 'udhcpc.sh');
  writeFileSync(script, SCRIPT);
  chmodSync(script, 0o755);
  if (netnsExists(netns)) deleteNetns(netns);
  state.vmSides = [...(state.vmSides ?? []).filter((s) => s.netns !== netns), { netns, node, vni }];
  writeState(state);
  addNetns(netns);
  const host = `vkv${vni}`.slice(0, 15);
  // A stable MAC per node and network, so the lease is the same one each time.
  const mac = `52:54:00:${[vni >> 8, vni & 0xff, Number(node.replace(/\D/g, '') || 0) & 0xff].map((b) => (b & 0xff).toString(16).padStart(2, '0')).join(':')}`;
  try {
    ip('-n', n.netns, 'link', 'del', host); // the veth end of a VM side made before
  } catch {
    // none
  }
  ip('-n', n.netns, 'link', 'add', host, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns);
  ip('-n', n.netns, 'link', 'set', host, 'master', `vkbr${vni}`, 'up');
  ip('-n', netns, 'link', 'set', 'eth0', 'address', mac, 'mtu', String(mtu), 'up');
  ip('-n', netns, 'link', 'set', 'lo', 'up');
  const out = join(dir, `lease-${mac}`);
  rmSync(out, { force: true });
  const r = spawnSync('ip', ['netns', 'exec', netns, 'busybox', 'udhcpc', '-i', 'eth0', '-q', '-n', '-t', '15', '-T', '1', '-A', '1', '-s', script, '-x', `hostname:vm-${node}`], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (!existsSync(out)) throw new Error(`no DHCP lease on network ${vni} from ${node}'s VM side (${netns}): ${`${r.stdout}${r.stderr}`.trim().split('\n').slice(-5).join(' | ')}`);
  const [leased = '', router = '', serverId = '', lease = '0'] = readFileSync(out, 'utf8').trim().split(' ');
  return { netns, node, vni, ip: leased, router, serverId, lease: Number(lease) };
}

/** Deletes the recorded VM sides (their veth ends go with them). */
export function removeVmSides(state: SandboxState): { deleted: string[]; leftovers: string[] } {
  const deleted: string[] = [];
  const leftovers: string[] = [];
  for (const s of state.vmSides ?? []) {
    if (!netnsExists(s.netns)) continue;
    try {
      deleteNetns(s.netns);
      deleted.push(s.netns);
    } catch (error) {
      leftovers.push(`netns ${s.netns}: ${(error as Error).message}`);
    }
  }
  return { deleted, leftovers };
}
