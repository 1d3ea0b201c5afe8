// The FRR driver (DESIGN §4 "FRR BGP EVPN", §5 "FRR 8.4"): FRR's integrated config file in
// confDir, proven in sync with `frr-reload.py --test` and applied with `--reload`; BGP peers and
// EVPN VNIs read through vtysh.
//
//   const frr = createFrrDriver({ confDir: '/etc/frr', vtySocket: '/var/run/frr', runDir: '/var/run/frr',
//     binDir: '/usr/bin', reloadScript: '/usr/lib/frr/frr-reload.py', timeoutMs: 10_000 });
//   await frr.writeConfig(rendered);
//   const d = await frr.delta();                 // { toDelete: [], toAdd: [] } = in sync
//   if (d.toDelete.length + d.toAdd.length > 0) await frr.reload();
//   await frr.bgpPeers();                        // [{ address, state: 'Established', prefixesReceived }]
//   await frr.evpnVnis();                        // [{ vni: 100, remoteVteps: ['198.51.100.2'] }]
//
// Every call first checks that FRR's daemons (location.daemons, default zebra and bgpd) accept a
// connection on their vty sockets, and the whole call is bounded by location.timeoutMs (a child
// process past it is killed with its process group). Failures are FrrError: FrrUnreachable (a
// daemon down, "failed to connect", "is not running", a command out of time), ReloadFailed
// (--reload exited non-zero, logged an error or ran out of time), FrrCommandFailed (the rest).
import { readConfig, writeConfig } from './config.ts';
import { reloadApply, reloadTest } from './reload.ts';
import { underHostname } from './run.ts';
import type { FrrDriver, FrrLocation } from './types.ts';
import { parseBgpSummary, parsed, parseEvpnVnis, showJson } from './vtysh.ts';

export * from './types.ts';
export { parseReloadTest } from './reload.ts';
export { parseBgpSummary, parseEvpnVnis } from './vtysh.ts';

const BGP_SUMMARY = 'show bgp l2vpn evpn summary json';
const EVPN_VNIS = 'show evpn vni json';

export function createFrrDriver(location: FrrLocation): FrrDriver {
  if (!(location.timeoutMs > 0)) throw new TypeError(`FrrLocation.timeoutMs must be positive (got ${location.timeoutMs})`);
  const loc: FrrLocation = { ...location };
  underHostname(loc, []); // throws on a bad hostname now rather than at every call
  for (const d of loc.daemons ?? []) if (!/^[a-z0-9]+$/.test(d)) throw new TypeError(`invalid FRR daemon name ${JSON.stringify(d)}`);
  return {
    readConfig: () => readConfig(loc),
    writeConfig: (text) => writeConfig(loc, text),
    delta: () => reloadTest(loc),
    reload: () => reloadApply(loc),
    bgpPeers: async () => parsed(loc, BGP_SUMMARY, await showJson(loc, BGP_SUMMARY), parseBgpSummary),
    evpnVnis: async () => parsed(loc, EVPN_VNIS, await showJson(loc, EVPN_VNIS), parseEvpnVnis),
  };
}
