// Dotted-quad IPv4 addresses as numbers, for the dnsmasq driver's checks (a range inside the
// gateway's subnet, a lease inside the range). Strict: four decimal octets, no leading zeros.

const OCTET = /^(0|[1-9][0-9]{0,2})$/;

/** The address as an unsigned 32-bit number, or undefined when `text` is not a dotted quad. */
export function ipv4ToNumber(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!OCTET.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    n = n * 256 + v;
  }
  return n;
}

export const isIpv4 = (text: string): boolean => ipv4ToNumber(text) !== undefined;

/** Netmask of a prefix length 0–32 as a dotted quad (24 → 255.255.255.0). */
export function netmask(prefixLength: number): string {
  const n = prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
  return [24, 16, 8, 0].map((s) => (n >>> s) & 0xff).join('.');
}

/** Whether `a` and `b` (numbers) share the first `prefixLength` bits. */
export function sameSubnet(a: number, b: number, prefixLength: number): boolean {
  if (prefixLength === 0) return true;
  const shift = 32 - prefixLength;
  return Math.floor(a / 2 ** shift) === Math.floor(b / 2 ** shift);
}
