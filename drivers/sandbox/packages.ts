// The Debian packages a sandbox runs (the users libvirt's QEMU driver needs: drivers/launch/libvirtd.ts).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** ZooKeeper (Java is a dependency), libvirtd with its QEMU driver, QEMU, virsh, ip, ps, the primary's dnsmasq and arping, busybox (the tour's DHCP client). */
export const SANDBOX_PACKAGES = [
  'zookeeper',
  'libvirt-daemon',
  'libvirt-daemon-driver-qemu',
  'libvirt-clients',
  'qemu-system-x86',
  'qemu-utils',
  'iproute2',
  'procps',
  'dnsmasq-base',
  'arping',
  'busybox',
] as const;

/** Programs the sandbox runs, checked after installation. */
export const SANDBOX_PROGRAMS = [
  '/usr/bin/java',
  '/usr/share/java/zookeeper.jar',
  '/usr/sbin/libvirtd',
  '/usr/bin/qemu-system-x86_64',
  '/usr/bin/virsh',
  '/usr/bin/unshare',
  '/usr/bin/nsenter',
  '/usr/sbin/dnsmasq',
  '/usr/sbin/arping',
  '/usr/bin/busybox',
] as const;

function installed(pkg: string): boolean {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes('install ok installed');
}

export function missingPackages(): string[] {
  return SANDBOX_PACKAGES.filter((p) => !installed(p));
}

export function aptLine(missing: readonly string[]): string {
  return `apt-get update && apt-get install -y --no-install-recommends ${missing.join(' ')}`;
}

/** apt-get update, then install; output goes to the terminal. Throws when apt-get fails. */
export function installPackages(missing: readonly string[]): void {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update', '-q'], ['install', '-y', '-q', '--no-install-recommends', ...missing]]) {
    const r = spawnSync('apt-get', args, { stdio: 'inherit', env });
    if (r.status !== 0) throw new Error(`apt-get ${args[0]} failed (exit ${r.status ?? r.signal})`);
  }
}

export function missingPrograms(): string[] {
  return SANDBOX_PROGRAMS.filter((p) => !existsSync(p));
}
