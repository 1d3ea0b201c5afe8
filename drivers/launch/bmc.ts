// How to run a simulated BMC (DESIGN §5 "BMC simulator"): OpenIPMI's ipmi_sim, a real IPMI v2 LAN
// (RMCP+) endpoint, on 127.0.0.1 or an address of a namespace, with every file in one directory:
//
//   lan.conf     startlan 1 / addr ADDRESS PORT / priv_limit admin / allowed_auths_* none md2 md5
//                straight / guid … / endlan, chassis_control "DIR/chassis", one admin user
//   cmds.emu     mc_setbmc 0x20, mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr,
//                sel_enable 0x20 1000 0x0a, mc_enable 0x20
//   chassis      the chassis control script: ipmi_sim runs `chassis get power` (it prints power:1 or
//                power:0) and `chassis set power 0|1` (an optional device argument first in other
//                OpenIPMI versions); the state is DIR/power, each set is appended to DIR/events as
//                "<epoch ms> set power <0|1>[ ignored]", and while DIR/ignore-off exists a
//                `set power 0` is logged as ignored and changes nothing ("off does not take")
//   state/       ipmi_sim's -s state directory
//
//   ipmi_sim -c DIR/lan.conf -f DIR/cmds.emu -s DIR/state -n
//
// ipmi_sim does not exit when its UDP port is taken (measured: it keeps running, serving nothing),
// so it serves only once /proc shows that very PID holding a socket bound to ADDRESS:PORT.
// Starting and stopping is the caller's (test/rig/bmc.ts: attached, under pdeathsig; ended by PID).
import { createSocket } from 'node:dgram';
import { accessSync, chmodSync, constants, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LaunchSpec } from './process.ts';

export const IPMI_SIM = '/usr/bin/ipmi_sim';
export const IPMITOOL = '/usr/bin/ipmitool';

/** Why a BMC cannot be simulated here, or undefined (Debian packages openipmi, ipmitool). */
export function bmcInstalled(): string | undefined {
  for (const f of [IPMI_SIM, IPMITOOL]) {
    try {
      accessSync(f, constants.X_OK);
    } catch {
      return `${f} is missing or not executable (Debian packages openipmi, ipmitool)`;
    }
  }
  return undefined;
}

/** Resolves true when a UDP socket could be bound to address:port (nothing holds it now). */
export function udpPortFree(port: number, address = '127.0.0.1'): Promise<boolean> {
  return new Promise((res) => {
    const s = createSocket('udp4');
    s.once('error', () => {
      s.close();
      res(false);
    });
    s.bind({ port, address, exclusive: true }, () => s.close(() => res(true)));
  });
}

/** A UDP port the kernel picks as free on `address` (bound, read, released: the caller still checks its server got it). */
export function freeUdpPort(address = '127.0.0.1'): Promise<number> {
  return new Promise((res, rej) => {
    const s = createSocket('udp4');
    s.once('error', rej);
    s.bind({ port: 0, address, exclusive: true }, () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

export interface BmcFilesOptions {
  dir: string;
  address: string;
  port: number;
  user: string;
  password: string;
  /** The power state at start (default on). */
  power?: 'on' | 'off';
}

export interface BmcFiles {
  dir: string;
  lanConf: string;
  emu: string;
  script: string;
  stateDir: string;
  /** "1" or "0". */
  powerFile: string;
  /** One line per chassis set: "<epoch ms> set power <0|1>[ ignored]". */
  eventsFile: string;
  /** While this file exists, `set power 0` is ignored. */
  ignoreOffFile: string;
  logFile: string;
}

const SAFE_DIR = /^\/[A-Za-z0-9_.\/-]+$/;
/** IPMI user names and passwords as lan.conf quotes them. */
const QUOTABLE = /^[A-Za-z0-9_.,:@+=%!#$^&*()[\]{}~-]{1,20}$/;

export function bmcFiles(dir: string): BmcFiles {
  return {
    dir,
    lanConf: join(dir, 'lan.conf'),
    emu: join(dir, 'cmds.emu'),
    script: join(dir, 'chassis'),
    stateDir: join(dir, 'state'),
    powerFile: join(dir, 'power'),
    eventsFile: join(dir, 'events'),
    ignoreOffFile: join(dir, 'ignore-off'),
    logFile: join(dir, 'ipmi_sim.log'),
  };
}

function chassisScript(f: BmcFiles): string {
  return `#!/bin/sh
# Chassis control of a simulated BMC (drivers/launch/bmc.ts): get prints power:1|0, set records.
D='${f.dir}'
[ "$1" = get ] || [ "$1" = set ] || shift
op=$1
shift
case "$op" in
get)
  for p in "$@"; do
    case "$p" in
      power) echo "power:$(cat "$D/power" 2>/dev/null || echo 1)" ;;
      boot) echo "boot:default" ;;
    esac
  done ;;
set)
  while [ $# -ge 2 ]; do
    now=$(date +%s%3N)
    case "$1" in
      power)
        if [ "$2" = 0 ] && [ -e "$D/ignore-off" ]; then
          echo "$now set power 0 ignored" >> "$D/events"
        else
          echo "$2" > "$D/power.new" && mv "$D/power.new" "$D/power"
          echo "$now set power $2" >> "$D/events"
        fi ;;
      reset) echo "$now set reset $2" >> "$D/events" ;;
    esac
    shift 2
  done ;;
esac
exit 0
`;
}

/** lan.conf's text (ipmi_sim keeps users changed over IPMI in its state dir, which then wins over this). */
export function lanConf(f: BmcFiles, o: Pick<BmcFilesOptions, 'address' | 'port' | 'user' | 'password'>): string {
  if (!QUOTABLE.test(o.user)) throw new TypeError(`BMC user must be 1–20 plain characters (got ${JSON.stringify(o.user)})`);
  if (!QUOTABLE.test(o.password)) throw new TypeError('BMC password must be 1–20 plain characters (value not shown)');
  if (!(Number.isInteger(o.port) && o.port > 0 && o.port < 65536)) throw new TypeError(`BMC port must be 1–65535 (got ${o.port})`);
  const auths = 'none md2 md5 straight';
  const guid = Buffer.from(`${o.address}:${o.port}`.padEnd(16, '.').slice(0, 16)).toString('hex');
  return [
    'name "vk-bmc"',
    'set_working_mc 0x20',
    '  startlan 1',
    `    addr ${o.address} ${o.port}`,
    '    priv_limit admin',
    ...['callback', 'user', 'operator', 'admin'].map((p) => `    allowed_auths_${p} ${auths}`),
    `    guid ${guid}`,
    '  endlan',
    `  chassis_control "${f.script}"`,
    `user 2 true "${o.user}" "${o.password}" admin 10 ${auths}`,
    '',
  ].join('\n');
}

/** Writes lan.conf, cmds.emu, the chassis script and the power file into `dir` (made if missing). */
export function writeBmcFiles(o: BmcFilesOptions): BmcFiles {
  if (!SAFE_DIR.test(o.dir)) throw new TypeError(`BMC dir must be an absolute path of plain characters (got ${JSON.stringify(o.dir)})`);
  const f = bmcFiles(o.dir);
  const conf = lanConf(f, o);
  mkdirSync(f.stateDir, { recursive: true });
  writeFileSync(f.lanConf, conf, { mode: 0o600 });
  writeFileSync(f.emu, ['mc_setbmc 0x20', 'mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr', 'sel_enable 0x20 1000 0x0a', 'mc_enable 0x20', ''].join('\n'));
  writeFileSync(f.script, chassisScript(f));
  chmodSync(f.script, 0o755);
  writeFileSync(f.powerFile, o.power === 'off' ? '0\n' : '1\n');
  writeFileSync(f.eventsFile, '');
  return f;
}

export function bmcLaunchSpec(f: BmcFiles): LaunchSpec {
  return { argv: [IPMI_SIM, '-c', f.lanConf, '-f', f.emu, '-s', f.stateDir, '-n'], logFile: f.logFile, cwd: f.dir };
}

/** The socket inodes bound to address:port in /proc/net/udp (IPv4). */
function udpInodes(address: string, port: number): Set<string> {
  const hex = address.split('.').map(Number).reverse().map((b) => b.toString(16).padStart(2, '0')).join('').toUpperCase();
  const want = `${hex}:${port.toString(16).padStart(4, '0').toUpperCase()}`;
  const out = new Set<string>();
  let text = '';
  try {
    text = readFileSync('/proc/net/udp', 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === want && f[9] !== undefined) out.add(f[9]);
  }
  return out;
}

/** True when process `pid` holds a UDP socket bound to address:port (as seen from this network namespace). */
export function udpBoundBy(pid: number, address: string, port: number): boolean {
  const inodes = udpInodes(address, port);
  if (inodes.size === 0) return false;
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m && inodes.has(m[1]!)) return true;
    }
  } catch {
    return false;
  }
  return false;
}

/** The power state the chassis script holds ("on"/"off"). */
export function bmcPower(f: BmcFiles): 'on' | 'off' {
  return readFileSync(f.powerFile, 'utf8').trim() === '0' ? 'off' : 'on';
}
