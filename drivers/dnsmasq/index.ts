// One dnsmasq per managed network, run by the primary coordinator's daemon: DHCP on the network's
// range and DNS for its domain, bound to the gateway's link, with the leases kept outside dnsmasq
// (`--leasefile-ro --dhcp-script`): a lease script that keeps one file per lease, which the daemon
// writes to ZooKeeper, and an init file the daemon writes from ZooKeeper before a start, so the
// next primary's dnsmasq knows every lease.
//
// INVARIANTS
//  D1  A dnsmasq is known by the state file runDir/dnsmasq-<vni>.json ({pid, startTime, specHash}):
//      it is signalled only while that PID still has that start time (drivers/launch/process.ts),
//      so an instance left by a previous run of the daemon is found and stopped, and no reused PID
//      is ever touched.
//  D2  start() resolves only once dnsmasq has bound its sockets (its log says so); a dnsmasq that
//      exits first rejects with its last log lines and leaves no process and no state file.
//  D3  The lease files are the level state of what dnsmasq last reported: lease-<vni>-<mac>, one
//      line `<expires> <mac> <ip> <hostname|*> <clientid|*>`; the script writes them atomically,
//      never runs anything a client sent, and readLeases() ignores any malformed file.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, watch, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { isAlive, sleep, spawnDetached, stopProcess, tailFile, type ProcRef } from '../launch/process.ts';

export interface DnsmasqLocation {
  runDir: string;
  /** Run inside `ip netns exec NETNS`. */
  netns?: string;
  binary?: string;
  /** Bound on a start or a stop. */
  timeoutMs?: number;
}

export interface DnsmasqSpec {
  vni: number;
  /** The link holding the gateway address (vkgw<N>). */
  interface: string;
  address: string;
  prefixLength: number;
  range?: { start: string; end: string };
  leaseTimeS?: number;
  domain?: string;
}

export interface ScriptLease {
  mac: string;
  ip: string;
  hostname?: string;
  clientId?: string;
  /** Seconds since the epoch; 0 = infinite. */
  expires: number;
}

export interface DnsmasqInstance {
  vni: number;
  pid: number;
  specHash: string;
}

export interface DnsmasqDriver {
  list(): Promise<DnsmasqInstance[]>;
  start(spec: DnsmasqSpec, leases: ScriptLease[]): Promise<DnsmasqInstance>;
  stop(vni: number): Promise<void>;
  readLeases(vni: number): ScriptLease[];
  watchLeases(onChange: (vni: number) => void): () => void;
  specHash(spec: DnsmasqSpec): string;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/;
const CLIENT_ID = /^[0-9a-f]{2}(:[0-9a-f]{2}){0,254}$/;

export function netmask(prefixLength: number): string {
  const n = prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
  return [24, 16, 8, 0].map((s) => (n >>> s) & 0xff).join('.');
}

const files = (runDir: string, vni: number) => ({
  state: join(runDir, `dnsmasq-${vni}.json`),
  log: join(runDir, `dnsmasq-${vni}.log`),
  script: join(runDir, `lease-${vni}.sh`),
  init: join(runDir, `lease-${vni}.init`),
});

/** dnsmasq's argv for a spec (without the netns wrapper). */
export function dnsmasqArgs(spec: DnsmasqSpec, runDir: string, binary = '/usr/sbin/dnsmasq'): string[] {
  const f = files(runDir, spec.vni);
  const args = [
    binary,
    '--keep-in-foreground',
    '--conf-file=/dev/null',
    '--no-hosts',
    '--no-resolv',
    // Our own state file tracks the process (D1); dnsmasq writes none.
    '--pid-file=',
    `--interface=${spec.interface}`,
    '--bind-interfaces',
    '--except-interface=lo',
    `--listen-address=${spec.address}`,
    `--log-facility=${f.log}`,
  ];
  if (spec.range) {
    args.push(
      `--dhcp-range=${spec.range.start},${spec.range.end},${netmask(spec.prefixLength)},${spec.leaseTimeS ?? 3600}s`,
      '--dhcp-authoritative',
      // Leases live in ZooKeeper: the script reports every change and, at start, hands them back (init).
      '--leasefile-ro',
      `--dhcp-script=${f.script}`,
      '--log-dhcp',
    );
  }
  if (spec.domain !== undefined) args.push(`--domain=${spec.domain}`, `--local=/${spec.domain}/`);
  else args.push('--port=0');
  return args;
}

const shQuote = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

/** The lease script for one network: writes or removes one file per lease; prints the init file on init. */
export function leaseScript(runDir: string, vni: number): string {
  const prefix = join(runDir, `lease-${vni}-`);
  const init = files(runDir, vni).init;
  return `#!/bin/sh
# dnsmasq --dhcp-script for network ${vni}, written by the virtkeeper daemon. Arguments are data only.
prefix=${shQuote(prefix)}
case "$1" in
  init)
    [ -f ${shQuote(init)} ] && cat ${shQuote(init)}
    exit 0 ;;
  add|old|del) ;;
  *) exit 0 ;;
esac
mac=$2
case "$mac" in
  *[!0-9a-f:]*|'') exit 0 ;;
esac
if [ "$1" = del ]; then
  rm -f -- "$prefix$mac"
  exit 0
fi
expires=\${DNSMASQ_LEASE_EXPIRES:-}
if [ -z "$expires" ]; then
  if [ -n "\${DNSMASQ_LEASE_LENGTH:-}" ]; then expires=$(( $(date +%s) + DNSMASQ_LEASE_LENGTH )); else expires=0; fi
fi
printf '%s %s %s %s %s\\n' "$expires" "$mac" "$3" "\${4:-*}" "\${DNSMASQ_CLIENT_ID:-*}" > "$prefix.$mac.tmp" && mv -f -- "$prefix.$mac.tmp" "$prefix$mac"
exit 0
`;
}

/** One lease line (D3); undefined when malformed. */
export function parseLeaseLine(line: string): ScriptLease | undefined {
  const [expires, mac, ip, host, clientId, ...rest] = line.trim().split(' ');
  if (rest.length > 0 || expires === undefined || !/^\d{1,12}$/.test(expires) || !mac || !MAC.test(mac) || !ip || !IPV4.test(ip)) return undefined;
  const lease: ScriptLease = { mac, ip, expires: Number(expires) };
  if (host !== undefined && host !== '*') {
    if (!HOSTNAME.test(host)) return undefined;
    lease.hostname = host;
  }
  if (clientId !== undefined && clientId !== '*') {
    if (!CLIENT_ID.test(clientId)) return undefined;
    lease.clientId = clientId;
  }
  return lease;
}

function leaseLine(l: ScriptLease): string {
  return `${l.expires} ${l.mac} ${l.ip} ${l.hostname ?? '*'} ${l.clientId ?? '*'}`;
}

interface State extends ProcRef {
  specHash: string;
}

function readState(file: string): State | undefined {
  try {
    const s = JSON.parse(readFileSync(file, 'utf8')) as State;
    return Number.isInteger(s.pid) && Number.isInteger(s.startTime) && typeof s.specHash === 'string' ? s : undefined;
  } catch {
    return undefined;
  }
}

export function createDnsmasqDriver(loc: DnsmasqLocation): DnsmasqDriver {
  const binary = loc.binary ?? '/usr/sbin/dnsmasq';
  const timeoutMs = loc.timeoutMs ?? 5_000;
  const ensureDir = () => mkdirSync(loc.runDir, { recursive: true, mode: 0o755 });
  const specHash = (spec: DnsmasqSpec) => createHash('sha256').update(JSON.stringify(dnsmasqArgs(spec, loc.runDir, binary))).digest('hex').slice(0, 16);

  const leaseFiles = (vni: number): string[] => {
    const prefix = `lease-${vni}-`;
    try {
      return readdirSync(loc.runDir).filter((f) => f.startsWith(prefix) && MAC.test(f.slice(prefix.length)));
    } catch {
      return [];
    }
  };

  async function list(): Promise<DnsmasqInstance[]> {
    const out: DnsmasqInstance[] = [];
    let names: string[];
    try {
      names = readdirSync(loc.runDir);
    } catch {
      return out;
    }
    for (const name of names) {
      const m = /^dnsmasq-(\d+)\.json$/.exec(name);
      if (!m) continue;
      const file = join(loc.runDir, name);
      const s = readState(file);
      if (s && isAlive(s)) out.push({ vni: Number(m[1]), pid: s.pid, specHash: s.specHash });
      else rmSync(file, { force: true });
    }
    return out.sort((a, b) => a.vni - b.vni);
  }

  async function stop(vni: number): Promise<void> {
    const f = files(loc.runDir, vni);
    const s = readState(f.state);
    if (s) await stopProcess(s, timeoutMs);
    rmSync(f.state, { force: true });
  }

  async function start(spec: DnsmasqSpec, leases: ScriptLease[]): Promise<DnsmasqInstance> {
    ensureDir();
    await stop(spec.vni);
    const f = files(loc.runDir, spec.vni);
    // The lease files start as the leases handed over (D3): what dnsmasq reports from here on replaces them.
    for (const old of leaseFiles(spec.vni)) rmSync(join(loc.runDir, old), { force: true });
    const valid = leases.filter((l) => parseLeaseLine(leaseLine(l)) !== undefined);
    for (const l of valid) writeFileSync(join(loc.runDir, `lease-${spec.vni}-${l.mac}`), `${leaseLine(l)}\n`);
    writeFileSync(`${f.init}.tmp`, valid.map((l) => `${leaseLine(l)}\n`).join(''));
    renameSync(`${f.init}.tmp`, f.init);
    writeFileSync(f.script, leaseScript(loc.runDir, spec.vni), { mode: 0o755 });
    writeFileSync(f.log, '');
    const args = dnsmasqArgs(spec, loc.runDir, binary);
    const argv = loc.netns !== undefined ? ['ip', 'netns', 'exec', loc.netns, ...args] : args;
    const ref = spawnDetached({ argv, logFile: `${f.log}.out` });
    const hash = specHash(spec);
    writeFileSync(f.state, JSON.stringify({ ...ref, specHash: hash }));
    const ready = spec.range ? /DHCP, sockets bound exclusively to interface/ : /started, version/;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const log = existsSync(f.log) ? readFileSync(f.log, 'utf8') : '';
      if (ready.test(log) && isAlive(ref)) return { vni: spec.vni, pid: ref.pid, specHash: hash };
      if (!isAlive(ref) || Date.now() > deadline) {
        await stop(spec.vni);
        const why = isAlive(ref) ? `not ready within ${timeoutMs} ms` : 'exited';
        throw new Error(`dnsmasq for network ${spec.vni} ${why}: ${[tailFile(`${f.log}.out`, 5), tailFile(f.log, 5)].filter(Boolean).join('\n')}`);
      }
      await sleep(10);
    }
  }

  function readLeases(vni: number): ScriptLease[] {
    const out: ScriptLease[] = [];
    for (const name of leaseFiles(vni)) {
      let text: string;
      try {
        text = readFileSync(join(loc.runDir, name), 'utf8');
      } catch {
        continue;
      }
      const l = parseLeaseLine(text);
      if (l && `lease-${vni}-${l.mac}` === name) out.push(l);
    }
    return out.sort((a, b) => a.mac.localeCompare(b.mac));
  }

  function watchLeases(onChange: (vni: number) => void): () => void {
    ensureDir();
    const w = watch(loc.runDir, (_event, name) => {
      const m = name ? /^lease-(\d+)-/.exec(String(name)) : null;
      if (m) onChange(Number(m[1]));
    });
    w.on('error', () => undefined);
    return () => w.close();
  }

  return { list, start, stop, readLeases, watchLeases, specHash };
}
