// The command line of one network's dnsmasq (pure): the files of a VNI in the run dir, the checks
// on a spec, the argv and its hash. Every flag checked against dnsmasq 2.90's --help and man page.
//
//   /usr/sbin/dnsmasq --keep-in-foreground --conf-file=/dev/null --no-hosts --no-resolv
//     --pid-file=RUN/dnsmasq-200.pid --log-facility=RUN/dnsmasq-200.log
//     --interface=vkgw200 --bind-interfaces --except-interface=lo --listen-address=203.0.113.1
//     --dhcp-range=203.0.113.100,203.0.113.199,255.255.255.0,3600s --dhcp-lease-max=100
//     --dhcp-authoritative --leasefile-ro --dhcp-script=RUN/lease-200.sh --log-dhcp
//     --domain=tenant.example --local=/tenant.example/          (or --port=0 without a domain)
//
// Why the unusual ones:
// - --keep-in-foreground: no fork, so the PID we spawn (in its own process group) is dnsmasq's,
//   and it is not debug mode (--no-daemon would also log to stderr and handle signals differently).
// - --conf-file=/dev/null, --no-hosts, --no-resolv: nothing from the host's /etc/dnsmasq.conf,
//   /etc/hosts or resolv.conf leaks in; everything dnsmasq does is on this command line.
// - --bind-interfaces + --except-interface=lo: dnsmasq binds the gateway address and the device
//   (DHCP: SO_BINDTODEVICE, "sockets bound exclusively to interface vkgw200"), not the wildcard,
//   so one dnsmasq per network can run side by side in one namespace and next to a host's own DNS
//   server. --interface makes dnsmasq add lo by itself; with --bind-interfaces that would bind
//   127.0.0.1:53 and a second instance would die on "address in use": lo is excluded.
// - --listen-address: redundant for serving (it is the interface's address) but it makes a start
//   without the gateway address fail loudly ("failed to create listening socket for 203.0.113.1")
//   instead of running with a DNS that never binds it (--bind-interfaces does not pick up
//   addresses added later). With --port=0 there is no DNS socket and it only names the address.
// - --dhcp-lease-max=<size of the range>: dnsmasq's default cap is 1000 leases, past which it
//   offers nothing and dies at start on "too many stored leases" from the init script.
// - --dhcp-authoritative: this is the only DHCP server of the network; after a hand-over it ACKs
//   renewals of leases it was given at start and NAKs wrong ones at once instead of ignoring them.
// - --leasefile-ro + --dhcp-script: no lease file; the script prints the init leases at start and
//   reports every change (add/old/del, and with --leasefile-ro also renewals) as one file per MAC.
// - --log-facility=FILE: dnsmasq's own log, with timestamps, in the file its stdout and stderr go
//   to as well (errors before logging starts, such as "unknown interface", are printed there);
//   --log-dhcp logs every DHCP exchange for diagnosis. The log is rotated to .log.1 at each start
//   (index.ts), so it grows with one instance's life only.
// - --domain + --local=/D/: the DHCP domain option and `<hostname>.<domain>` answers from the
//   leases; names in D are never forwarded (NXDOMAIN when unknown). There is no upstream server
//   (--no-resolv, no --server): other names are REFUSED. Without a domain, --port=0: no DNS at all
//   (and no DNS server option sent to clients).
// - No --user: dnsmasq drops root after start to its compiled-in user (nobody on Debian), keeping
//   only CAP_NET_ADMIN/CAP_NET_RAW; the pidfile is written and the log opened (and chowned) before
//   that, and the lease script runs in a helper forked before the drop, as root (--dhcp-scriptuser
//   defaults to root), so it can write the root-owned run dir. That works as root in the rig and is
//   the least privilege in production; an explicit --user=dnsmasq would die where that user is
//   missing.
import { createHash } from 'node:crypto';
import { ipv4ToNumber, netmask, sameSubnet } from './ipv4.ts';
import type { DnsmasqSpec } from './types.ts';

export const DEFAULT_BINARY = '/usr/sbin/dnsmasq';
export const DEFAULT_LEASE_TIME_S = 3600;
/** dnsmasq raises shorter lease times to two minutes. */
export const MIN_LEASE_TIME_S = 120;

const RUN_DIR = /^\/[A-Za-z0-9._+/-]*$/;
/** A Linux interface name dnsmasq takes as is (no ':' alias label, no '*' wildcard, no ','). */
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const NETNS_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$/;
const MAX_VNI = 0xffffff;

/** The files of one VNI's dnsmasq in the run dir. */
export interface VniFiles {
  pidFile: string;
  logFile: string;
  script: string;
  /** What the script prints on `init`. */
  initFile: string;
  /** One file per MAC, written by the script. */
  leaseDir: string;
}

export function vniFiles(runDir: string, vni: number): VniFiles {
  return {
    pidFile: `${runDir}/dnsmasq-${vni}.pid`,
    logFile: `${runDir}/dnsmasq-${vni}.log`,
    script: `${runDir}/lease-${vni}.sh`,
    initFile: `${runDir}/leases-${vni}.init`,
    leaseDir: `${runDir}/leases-${vni}`,
  };
}

/** Names in the run dir: pidfiles and lease dirs, with their VNI. */
export const PIDFILE_NAME = /^dnsmasq-([1-9][0-9]{0,7})\.pid$/;
export const LEASE_DIR_NAME = /^leases-([1-9][0-9]{0,7})$/;

/** The run dir without a trailing slash; TypeError when it is not an absolute path of safe characters (it ends up in a shell script and in dnsmasq options). */
export function checkedRunDir(runDir: string): string {
  if (!RUN_DIR.test(runDir) || runDir.split('/').includes('..')) throw new TypeError(`DnsmasqLocation.runDir must be an absolute path of [A-Za-z0-9._+/-] (got ${JSON.stringify(runDir)})`);
  return runDir.length > 1 ? runDir.replace(/\/+$/, '') : runDir;
}

export function checkedNetns(netns: string): string {
  if (!NETNS_NAME.test(netns)) throw new TypeError(`invalid network namespace name ${JSON.stringify(netns)}`);
  return netns;
}

export function checkedVni(vni: number): number {
  if (!Number.isInteger(vni) || vni < 1 || vni > MAX_VNI) throw new TypeError(`VNI must be an integer 1–${MAX_VNI} (got ${vni})`);
  return vni;
}

export function dnsDomainOk(domain: string): boolean {
  return domain.length <= 253 && domain.split('.').every((l) => DNS_LABEL.test(l));
}

/** Why the spec cannot be run, or undefined. */
export function specProblem(spec: DnsmasqSpec): string | undefined {
  if (!Number.isInteger(spec.vni) || spec.vni < 1 || spec.vni > MAX_VNI) return `vni must be an integer 1–${MAX_VNI} (got ${spec.vni})`;
  if (!IFNAME.test(spec.interface)) return `interface ${JSON.stringify(spec.interface)} is not an interface name`;
  const address = ipv4ToNumber(spec.address);
  if (address === undefined) return `address ${JSON.stringify(spec.address)} is not an IPv4 address`;
  if (!Number.isInteger(spec.prefixLength) || spec.prefixLength < 1 || spec.prefixLength > 30) return `prefixLength must be an integer 1–30 (got ${spec.prefixLength})`;
  if (spec.leaseTimeS !== undefined && (!Number.isInteger(spec.leaseTimeS) || spec.leaseTimeS < MIN_LEASE_TIME_S || spec.leaseTimeS > 0xffffffff))
    return `leaseTimeS must be an integer of at least ${MIN_LEASE_TIME_S} (dnsmasq's minimum; got ${spec.leaseTimeS})`;
  if (spec.domain !== undefined && !dnsDomainOk(spec.domain)) return `domain ${JSON.stringify(spec.domain)} is not a DNS domain of lower-case labels`;
  if (spec.range) {
    const start = ipv4ToNumber(spec.range.start);
    const end = ipv4ToNumber(spec.range.end);
    if (start === undefined || end === undefined) return `range ${JSON.stringify(spec.range)} is not two IPv4 addresses`;
    if (start > end) return `range start ${spec.range.start} is above its end ${spec.range.end}`;
    for (const a of [start, end])
      if (!sameSubnet(a, address, spec.prefixLength)) return `range ${spec.range.start}–${spec.range.end} is not inside ${spec.address}/${spec.prefixLength}`;
    if (address >= start && address <= end) return `range ${spec.range.start}–${spec.range.end} holds the gateway address ${spec.address}`;
  }
  if (spec.range === undefined && spec.domain === undefined) return 'neither a DHCP range nor a DNS domain: nothing to serve';
  return undefined;
}

/** The number of addresses of the spec's range (0 without one). */
export function rangeSize(spec: DnsmasqSpec): number {
  if (!spec.range) return 0;
  return ipv4ToNumber(spec.range.end)! - ipv4ToNumber(spec.range.start)! + 1;
}

/** dnsmasq's argv for `spec` (argv[0] the binary); TypeError when the spec cannot be run. */
export function dnsmasqArgv(spec: DnsmasqSpec, runDir: string, binary = DEFAULT_BINARY): string[] {
  const problem = specProblem(spec);
  if (problem !== undefined) throw new TypeError(`dnsmasq spec for VNI ${spec.vni}: ${problem}`);
  const f = vniFiles(checkedRunDir(runDir), spec.vni);
  const argv = [
    binary,
    '--keep-in-foreground',
    '--conf-file=/dev/null',
    '--no-hosts',
    '--no-resolv',
    `--pid-file=${f.pidFile}`,
    `--log-facility=${f.logFile}`,
    `--interface=${spec.interface}`,
    '--bind-interfaces',
    '--except-interface=lo',
    `--listen-address=${spec.address}`,
  ];
  if (spec.range) {
    const lease = spec.leaseTimeS ?? DEFAULT_LEASE_TIME_S;
    argv.push(
      `--dhcp-range=${spec.range.start},${spec.range.end},${netmask(spec.prefixLength)},${lease}s`,
      `--dhcp-lease-max=${rangeSize(spec)}`,
      '--dhcp-authoritative',
      '--leasefile-ro',
      `--dhcp-script=${f.script}`,
      '--log-dhcp',
    );
  }
  if (spec.domain !== undefined) argv.push(`--domain=${spec.domain}`, `--local=/${spec.domain}/`);
  else argv.push('--port=0');
  return argv;
}

/** The hash of an argv (as spawned, or as read back from /proc/<pid>/cmdline). */
export function argvHash(argv: readonly string[]): string {
  return createHash('sha256').update(argv.join('\0')).digest('hex').slice(0, 16);
}

/** `--pid-file=…` as it appears in the argv of VNI `vni`'s dnsmasq. */
export const pidFileArg = (runDir: string, vni: number): string => `--pid-file=${vniFiles(runDir, vni).pidFile}`;
