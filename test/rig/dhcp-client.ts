// A VM side for the network tests: a namespace whose eth0 (a veth) is plugged into a bridge of a
// node's namespace, with busybox udhcpc as its DHCP client. udhcpc runs in the foreground as our
// child; its script applies the lease and appends every event as a JSON line to a file the test
// reads. Processes are ended by PID; cleanup() deletes the namespace.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ip } from '../../drivers/launch/netns.ts';

export interface DhcpEvent {
  event: 'bound' | 'renew' | 'deconfig' | 'leasefail' | 'nak';
  ip?: string;
  router?: string;
  serverId?: string;
  lease?: number;
  at: number;
}

export interface DhcpClient {
  ns: string;
  mac: string;
  /** Starts udhcpc and resolves with the first lease bound. */
  dhcp(o: { hostname?: string; timeoutMs?: number }): Promise<Required<Pick<DhcpEvent, 'ip' | 'router' | 'serverId'>> & DhcpEvent>;
  /** Asks udhcpc to renew now (SIGUSR1) and resolves with the next renew/bound event. */
  renew(timeoutMs?: number): Promise<DhcpEvent>;
  events(): DhcpEvent[];
  cleanup(): Promise<void>;
}

// udhcpc's script: applies the lease and logs the event (values come from the DHCP server: quoted).
const SCRIPT = `#!/bin/sh
log="$(dirname "$0")/events.jsonl"
case "$1" in
  deconfig) ip addr flush dev "$interface" ;;
  bound|renew)
    ip addr replace "$ip/\${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route replace default via "\${router%% *}" dev "$interface" ;;
esac
printf '{"event":"%s","ip":"%s","router":"%s","serverId":"%s","lease":"%s","at":%s}\\n' "$1" "\${ip:-}" "\${router%% *}" "\${serverid:-}" "\${lease:-}" "$(date +%s%3N)" >> "$log"
exit 0
`;

export function plugClient(o: { nodeNs: string; bridge: string; name: string; mtu?: number; mac: string }): DhcpClient {
  const dir = mkdtempSync(join(tmpdir(), 'vk-dhcp-'));
  const script = join(dir, 'udhcpc.sh');
  writeFileSync(script, SCRIPT);
  chmodSync(script, 0o755);
  const host = `${o.name}h`.slice(-15);
  ip('netns', 'add', o.name);
  try {
    ip('-n', o.nodeNs, 'link', 'add', host, 'mtu', String(o.mtu ?? 1500), 'type', 'veth', 'peer', 'name', 'eth0', 'netns', o.name);
    ip('-n', o.nodeNs, 'link', 'set', host, 'master', o.bridge, 'up');
    ip('-n', o.name, 'link', 'set', 'eth0', 'address', o.mac, 'mtu', String(o.mtu ?? 1500), 'up');
    ip('-n', o.name, 'link', 'set', 'lo', 'up');
  } catch (error) {
    ip('netns', 'del', o.name);
    throw error;
  }
  let child: ChildProcess | undefined;
  const events = (): DhcpEvent[] => {
    const file = join(dir, 'events.jsonl');
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const e = JSON.parse(l) as Record<string, string | number>;
        return { ...e, lease: Number(e.lease) || undefined } as DhcpEvent;
      });
  };
  const next = async (from: number, kinds: string[], timeoutMs: number): Promise<DhcpEvent> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = events().slice(from).find((x) => kinds.includes(x.event));
      if (e) return e;
      if (Date.now() > deadline) throw new Error(`udhcpc in ${o.name}: no ${kinds.join('/')} within ${timeoutMs} ms; events: ${JSON.stringify(events())}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return {
    ns: o.name,
    mac: o.mac,
    async dhcp({ hostname, timeoutMs = 30_000 }) {
      const args = ['netns', 'exec', o.name, 'busybox', 'udhcpc', '-f', '-i', 'eth0', '-s', script, '-t', '20', '-T', '1', '-A', '1'];
      if (hostname) args.push('-x', `hostname:${hostname}`);
      child = spawn('ip', args, { stdio: 'ignore' });
      const e = await next(0, ['bound'], timeoutMs);
      return e as DhcpEvent & { ip: string; router: string; serverId: string };
    },
    async renew(timeoutMs = 15_000) {
      if (!child?.pid) throw new Error('udhcpc is not running');
      const from = events().length;
      process.kill(child.pid, 'SIGUSR1');
      return next(from, ['renew', 'bound'], timeoutMs);
    },
    events,
    async cleanup() {
      if (child && child.exitCode === null && child.signalCode === null && child.pid) {
        const gone = new Promise((r) => child!.once('exit', r));
        process.kill(child.pid, 'SIGKILL');
        await gone;
      }
      try {
        ip('netns', 'del', o.name);
      } catch {
        // already gone
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
