import { isIP } from 'node:net';
import type { Problem } from './formats.ts';

export type IpFamily = 4 | 6;

export interface Cidr {
  address: string;
  prefix: number;
  family: IpFamily;
}

/** Splits `10.0.0.1/24` or `2001:db8::1/64`; undefined unless address and prefix are both well formed. */
export function parseCidr(value: string): Cidr | undefined {
  const slash = value.indexOf('/');
  if (slash < 0) return undefined;
  const address = value.slice(0, slash);
  const prefixText = value.slice(slash + 1);
  // isIP accepts IPv6 zone ids ("fe80::1%eth0"), which have no place in a network definition.
  if (address.includes('%')) return undefined;
  const family = isIP(address);
  if (family !== 4 && family !== 6) return undefined;
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > (family === 4 ? 32 : 128)) return undefined;
  return { address, prefix, family };
}

export function ipv4ToNumber(address: string): number {
  return address.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

function ipv4HostBits(cidr: Cidr): { host: number; size: number } {
  const size = 2 ** (32 - cidr.prefix);
  return { host: ipv4ToNumber(cidr.address) % size, size };
}

/** True when `address` (IPv4) lies in the subnet of `cidr` (IPv4). */
export function ipv4InSubnet(address: string, cidr: Cidr): boolean {
  const size = 2 ** (32 - cidr.prefix);
  return Math.floor(ipv4ToNumber(address) / size) === Math.floor(ipv4ToNumber(cidr.address) / size);
}

export const ipv4Problem: Problem = (value) =>
  isIP(value) === 4 ? undefined : 'must be a dotted-quad IPv4 address like 192.0.2.1';

/** A unicast host address another host can reach: not 0.0.0.0/8, loopback, link-local, multicast or broadcast. */
export const unicastIpv4Problem: Problem = (value) => {
  const problem = ipv4Problem(value);
  if (problem) return problem;
  const first = Number(value.split('.')[0]);
  if (first === 0) return 'must be a host address, not in 0.0.0.0/8';
  if (first === 127) return 'must be reachable from other nodes, not a loopback address';
  if (value.startsWith('169.254.')) return 'must be routable, not a link-local address';
  if (first >= 224) return value === '255.255.255.255' ? 'must be a host address, not the broadcast address' : 'must be a unicast address, not multicast or reserved (224.0.0.0/3)';
  return undefined;
};

/** A gateway: a host address with its prefix length, e.g. 192.0.2.1/24. */
export function gatewayProblem(family: IpFamily): Problem {
  const max = family === 4 ? 32 : 128;
  const example = family === 4 ? '192.0.2.1/24' : '2001:db8::1/64';
  return (value) => {
    const cidr = parseCidr(value);
    if (!cidr || cidr.family !== family) {
      return `must be an IPv${family} address with a prefix length 0-${max}, like ${example}`;
    }
    if (family === 4 && cidr.prefix <= 30) {
      const { host, size } = ipv4HostBits(cidr);
      if (host === 0) return `is the network address of /${cidr.prefix}, not a host address`;
      if (host === size - 1) return `is the broadcast address of /${cidr.prefix}, not a host address`;
    }
    return undefined;
  };
}
