// The files of a throwaway Ceph 16 (DESIGN §5 "Ceph 16"): where everything lives under one
// directory D, and the two ceph.conf texts — the daemons' (one monitor "a", msgr2 only, one OSD
// on memstore, auth none, pool size 1) and the clients' (mon host, auth none, a mount timeout, no
// admin socket), which is what `rbd`/`ceph` and librbd in QEMU are given. Both are named ceph.conf
// because Ceph takes the cluster name from the config file's name ("x.conf" is cluster x, which
// changes its default paths).
//
//   D/ceph.conf          the clients' config (returned to the caller)
//   D/server/ceph.conf   the daemons' config; D/server/keyring (mon., for mkfs), D/server/monmap
//   D/mon, D/osd         monitor store and OSD data (memstore keeps the OSD's objects in memory)
//   D/run                pid files;  D/log  the daemons' logs and what they print (mon.a.out, osd.0.out)
import { isIPv4 } from 'node:net';
import { join } from 'node:path';

export const MON_ID = 'a';
export const OSD_ID = 0;
export const DEFAULT_MON_PORT = 3300;
export const DEFAULT_POOL = 'rbd';

export interface CephFiles {
  dir: string;
  /** The clients' ceph.conf. */
  conf: string;
  serverDir: string;
  serverConf: string;
  keyring: string;
  monmap: string;
  monData: string;
  osdData: string;
  runDir: string;
  logDir: string;
}

export function cephFiles(dir: string): CephFiles {
  const serverDir = join(dir, 'server');
  return {
    dir,
    conf: join(dir, 'ceph.conf'),
    serverDir,
    serverConf: join(serverDir, 'ceph.conf'),
    keyring: join(serverDir, 'keyring'),
    monmap: join(serverDir, 'monmap'),
    monData: join(dir, 'mon'),
    osdData: join(dir, 'osd'),
    runDir: join(dir, 'run'),
    logDir: join(dir, 'log'),
  };
}

export interface CephAddress {
  /** The monitor's (and the OSD's) IPv4 address. */
  address: string;
  port: number;
}

/** What mon_host says: msgr2 only. */
export const monHost = (a: CephAddress): string => `v2:${a.address}:${a.port}`;

const POOL = /^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}$/;
/** Paths go into ceph.conf, where '#', ';', '$' and newlines mean something. */
const SAFE_PATH = /^\/[A-Za-z0-9._+/-]*$/;

export function checkCephAddress(a: CephAddress): void {
  if (!isIPv4(a.address)) throw new TypeError(`the monitor's address must be an IPv4 address (got ${JSON.stringify(a.address)})`);
  if (!Number.isInteger(a.port) || a.port < 1 || a.port > 65535) throw new TypeError(`invalid monitor port ${a.port}`);
}

export function checkPool(pool: string): string {
  if (!POOL.test(pool)) throw new TypeError(`invalid pool name ${JSON.stringify(pool)}`);
  return pool;
}

export function checkDir(dir: string): string {
  if (!SAFE_PATH.test(dir) || dir.split('/').includes('..')) throw new TypeError(`the Ceph directory must be an absolute path of [A-Za-z0-9._+/-] (got ${JSON.stringify(dir)})`);
  return dir.length > 1 ? dir.replace(/\/+$/, '') : dir;
}

const AUTH_NONE = ['auth cluster required = none', 'auth service required = none', 'auth client required = none'];

/** The daemons' ceph.conf. */
export function serverConfig(f: CephFiles, fsid: string, a: CephAddress): string {
  return [
    `# virtkeeper: a throwaway Ceph 16 (one monitor, one memstore OSD, auth none); clients use ${f.conf}`,
    '[global]',
    `fsid = ${fsid}`,
    `mon host = ${monHost(a)}`,
    ...AUTH_NONE,
    'ms bind msgr1 = false',
    'ms bind msgr2 = true',
    'osd pool default size = 1',
    'osd pool default min size = 1',
    'mon allow pool size one = true',
    // One OSD on one host: place replicas across OSDs, not hosts.
    'osd crush chooseleaf type = 0',
    // Map changes commit in tens of ms instead of the default 1 s propose interval.
    'paxos propose interval = 0.05',
    'paxos min wait = 0.01',
    // A throwaway monitor on a test machine's /tmp must not shut itself down when the disk is 95 % full.
    'mon data avail crit = 0',
    'mon data avail warn = 0',
    `run dir = ${f.runDir}`,
    `pid file = ${f.runDir}/$name.pid`,
    `log file = ${f.logDir}/$name.log`,
    `admin socket = ${f.runDir}/$name.asok`,
    `keyring = ${f.keyring}`,
    '[mon]',
    `mon data = ${f.monData}`,
    '[osd]',
    `osd data = ${f.osdData}`,
    'osd objectstore = memstore',
    `public addr = ${a.address}`,
    `cluster addr = ${a.address}`,
    '[client]',
    'admin socket =',
    '',
  ].join('\n');
}

/** The clients' ceph.conf: no file of D is needed to use it (it works from any namespace that reaches the monitor). */
export function clientConfig(fsid: string, a: CephAddress, mountTimeoutS = 10): string {
  return [
    `# virtkeeper: client config of a throwaway Ceph 16 (monitor ${monHost(a)}, auth none)`,
    '[global]',
    `fsid = ${fsid}`,
    `mon host = ${monHost(a)}`,
    ...AUTH_NONE,
    // librados waits 300 s for an unreachable monitor by default; the RBD driver passes its own.
    `client mount timeout = ${mountTimeoutS}`,
    '[client]',
    // No admin socket and no log file: short-lived `rbd` calls from many namespaces share this file.
    'admin socket =',
    'log file =',
    '',
  ].join('\n');
}
