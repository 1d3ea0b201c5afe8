// A VM-side DHCP client for tests: a network namespace plugged into a bridge of a node namespace
// (a veth pair: the host end `<name>h`, cut to 15 characters, a port of the bridge; the other end
// eth0 in the client's namespace) and busybox udhcpc running in it with a script of ours. The
// script applies what udhcpc got (address, default route) and appends each event as one JSON line
// to a file the test reads: { event, ip, mask, router, serverid, lease, dns, domain, hostname, at }.
//
//   const c = plugClient({ nodeNs: 'hv1', bridge: 'vkbr200', name: 'vkvm1', mac: '02:00:00:00:00:01' });
//   const lease = await dhcp(c, { hostname: 'vm1', timeoutMs: 20_000 });   // the first bound event
//   const again = await renew(c);                                           // SIGUSR1, the next renew/bound
//   await c.cleanup();                                                       // udhcpc killed by PID, namespace deleted
//
// udhcpc is started under `setpriv --pdeathsig SIGKILL` (it dies with the test process) and is
// signalled only by its PID. Namespaces made here are also deleted when the process exits.
import { type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addNetns, deleteNetns, ip } from '../../drivers/launch/netns.ts';
import { childRunning, spawnAttached, tailFile } from '../../drivers/launch/process.ts';
import { waitFor } from './wait.ts';

export interface DhcpEvent {
  /** deconfig, bound, renew, leasefail, nak. */
  event: string;
  ip: string;
  /** Prefix length. */
  mask: string;
  router: string;
  serverid: string;
  /** Lease time in seconds, as a string (udhcpc's). */
  lease: string;
  dns: string;
  domain: string;
  /** The hostname option the server sent back, if any. */
  hostname: string;
  /** Date.now() of the moment the script ran, ms. */
  at: number;
}

export interface DhcpClient {
  /** The client's namespace. */
  ns: string;
  /** The bridge port in the node's namespace. */
  hostDev: string;
  nodeNs: string;
  mac: string;
  /** Temp dir: the script, the events file, udhcpc's log. */
  dir: string;
  eventsFile: string;
  logFile: string;
  /** udhcpc, once dhcp() started it. */
  udhcpc?: ChildProcess;
  /** Kills udhcpc (by PID, waiting for its exit) and deletes the namespace and the temp dir. */
  cleanup(): Promise<void>;
}

export interface PlugOptions {
  nodeNs: string;
  bridge: string;
  /** The client's namespace name (also the stem of the bridge port's name). */
  name: string;
  mtu?: number;
  /** eth0's MAC; default a random locally administered one. */
  mac?: string;
}

const made = new Set<string>();
const running = new Set<ChildProcess>();
let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', () => {
    for (const c of running) if (c.pid !== undefined && childRunning(c)) process.kill(c.pid, 'SIGKILL');
    for (const ns of made) {
      try {
        deleteNetns(ns);
      } catch {
        // gone
      }
    }
  });
}

const randomMac = (): string => `02:${Array.from({ length: 5 }, () => Math.floor(Math.random() * 256).toString(16).padStart(2, '0')).join(':')}`;

/** The udhcpc script: applies the lease without a gap on renew and logs every event as a JSON line. */
function clientScript(eventsFile: string): string {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  return `#!/bin/sh
# udhcpc script of test/rig/dhcp-client.ts
PATH=/usr/sbin:/usr/bin:/sbin:/bin
EVENTS=${q(eventsFile)}
clean() { printf '%s' "$1" | tr -cd 'A-Za-z0-9._:/ -'; }
now=$(date +%s%3N)
printf '{"event":"%s","ip":"%s","mask":"%s","router":"%s","serverid":"%s","lease":"%s","dns":"%s","domain":"%s","hostname":"%s","at":%s}\\n' \\
  "$(clean "$1")" "$(clean "\${ip-}")" "$(clean "\${mask-}")" "$(clean "\${router-}")" "$(clean "\${serverid-}")" \\
  "$(clean "\${lease-}")" "$(clean "\${dns-}")" "$(clean "\${domain-}")" "$(clean "\${hostname-}")" "$now" >> "$EVENTS"
case "$1" in
  deconfig)
    ip link set dev "$interface" up
    ip -4 addr flush dev "$interface"
    ;;
  bound|renew)
    ip addr replace "$ip/$mask" dev "$interface"
    for a in $(ip -4 -o addr show dev "$interface" | awk '{print $4}'); do
      [ "$a" = "$ip/$mask" ] || ip addr del "$a" dev "$interface"
    done
    if [ -n "\${router-}" ]; then
      set -- $router
      ip route replace default via "$1" dev "$interface"
    fi
    ;;
esac
exit 0
`;
}

/** Creates namespace `name` with eth0 whose peer `<name>h` is a port of `bridge` in `nodeNs`, both up. */
export function plugClient(o: PlugOptions): DhcpClient {
  hookExit();
  const hostDev = `${o.name}h`.slice(0, 15);
  const mac = (o.mac ?? randomMac()).toLowerCase();
  addNetns(o.name); // fails when the name is taken: someone else's namespace is never touched
  made.add(o.name);
  try {
    ip('-n', o.name, 'link', 'set', 'lo', 'up');
    ip('-n', o.name, 'link', 'add', 'eth0', 'address', mac, 'type', 'veth', 'peer', 'name', hostDev, 'netns', o.nodeNs);
    if (o.mtu !== undefined) {
      ip('-n', o.name, 'link', 'set', 'eth0', 'mtu', String(o.mtu));
      ip('-n', o.nodeNs, 'link', 'set', hostDev, 'mtu', String(o.mtu));
    }
    ip('-n', o.nodeNs, 'link', 'set', hostDev, 'master', o.bridge, 'up');
    ip('-n', o.name, 'link', 'set', 'eth0', 'up');
  } catch (e) {
    deleteNetns(o.name);
    made.delete(o.name);
    throw e;
  }
  const dir = mkdtempSync(join(tmpdir(), `vk-dhcp-${o.name}-`));
  const client: DhcpClient = {
    ns: o.name,
    hostDev,
    nodeNs: o.nodeNs,
    mac,
    dir,
    eventsFile: join(dir, 'events.jsonl'),
    logFile: join(dir, 'udhcpc.log'),
    cleanup: async () => {
      await stopUdhcpc(client);
      deleteNetns(o.name);
      made.delete(o.name);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return client;
}

/** Every event so far. */
export function events(client: DhcpClient): DhcpEvent[] {
  let text: string;
  try {
    text = readFileSync(client.eventsFile, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as DhcpEvent);
}

const describe = (client: DhcpClient) => (): string =>
  `udhcpc events:\n${events(client)
    .map((e) => JSON.stringify(e))
    .join('\n')}\nudhcpc log:\n${tailFile(client.logFile, 15)}`;

/** The first event after the first `after` ones whose kind is one of `kinds`. */
export function nextEvent(client: DhcpClient, after: number, kinds: readonly string[], timeoutMs: number): Promise<DhcpEvent> {
  return waitFor(
    `udhcpc in ${client.ns}: ${kinds.join(' or ')} after event ${after}`,
    () => {
      if (client.udhcpc && !childRunning(client.udhcpc)) throw new Error('udhcpc exited');
      return events(client)
        .slice(after)
        .find((e) => kinds.includes(e.event));
    },
    timeoutMs,
    describe(client),
    50,
  );
}

export interface DhcpOptions {
  /** Sent as option 12 (udhcpc -x hostname:NAME). */
  hostname?: string;
  /** Ask for this address (udhcpc -r IP). */
  requestIp?: string;
  timeoutMs: number;
}

/** Starts udhcpc on eth0 (in the background, retrying every second) and resolves with its first bound event. */
export async function dhcp(client: DhcpClient, o: DhcpOptions): Promise<DhcpEvent> {
  if (client.udhcpc && childRunning(client.udhcpc)) throw new Error(`udhcpc already runs in ${client.ns}`);
  const script = join(client.dir, 'udhcpc.sh');
  writeFileSync(script, clientScript(client.eventsFile));
  chmodSync(script, 0o755);
  const argv = ['ip', 'netns', 'exec', client.ns, 'busybox', 'udhcpc', '-i', 'eth0', '-f', '-s', script, '-t', '30', '-T', '1', '-A', '1'];
  if (o.hostname !== undefined) argv.push('-x', `hostname:${o.hostname}`);
  if (o.requestIp !== undefined) argv.push('-r', o.requestIp);
  const after = events(client).length;
  const child = spawnAttached({ argv, logFile: client.logFile }, { pdeathsig: 'SIGKILL' });
  child.on('error', () => undefined);
  client.udhcpc = child;
  running.add(child);
  return nextEvent(client, after, ['bound'], o.timeoutMs);
}

/** SIGUSR1 to udhcpc (renew now) and the next renew or bound event. */
export async function renew(client: DhcpClient, timeoutMs = 15_000): Promise<DhcpEvent> {
  const child = client.udhcpc;
  if (!child || child.pid === undefined || !childRunning(child)) throw new Error(`udhcpc does not run in ${client.ns}`);
  const after = events(client).length;
  process.kill(child.pid, 'SIGUSR1');
  return nextEvent(client, after, ['renew', 'bound'], timeoutMs);
}

/** Kills udhcpc by its PID and waits for its exit. */
export async function stopUdhcpc(client: DhcpClient): Promise<void> {
  const child = client.udhcpc;
  if (!child || child.pid === undefined) return;
  if (childRunning(child)) {
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    process.kill(child.pid, 'SIGKILL');
    await exited;
  }
  running.delete(child);
  client.udhcpc = undefined;
}
