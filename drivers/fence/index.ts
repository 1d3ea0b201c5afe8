// The fence driver (DESIGN §4 "Fencing and recovery"): a node's power through its BMC, and a
// configured fence command. The storage level (`ceph osd blocklist add`) is the RBD driver's.
//
//   const bmc = createIpmiFencer({ host: '192.0.2.13', user: 'admin', password, cipherSuite: 3 });
//   await bmc.status();     // 'on' | 'off'
//   await bmc.powerOff();   // off, then status until "off" (case-insensitive), or FenceNotVerified
//   await createCommandFencer({ command: ['/usr/local/bin/pdu-off', 'hv3'], node: 'hv3' }).fence();
//
// Failures are FenceError with a reason (./types.ts); the password is never on argv or in a message.
export * from './types.ts';
export { createIpmiFencer, ipmitoolArgv, ipmiSettings } from './ipmi.ts';
export { createCommandFencer } from './command.ts';
export { parsePowerStatus, sessionFailureReason } from './parse.ts';
