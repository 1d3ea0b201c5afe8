// The test-driver holder of a sandbox node (`vk sandbox hold`, started by `vk sandbox up`).
//
// libvirt's test driver (test:///default) keeps its domains only while some connection to it is
// open: when the last one closes, the next connection finds the driver's initial state again.
// On a sandbox node the daemon's connection used to be the only one, so killing or restarting the
// daemon (or a pause long enough for libvirtd to drop it) wiped every guest of the node, while on
// a real hypervisor guests outlive the daemon. This small process holds one connection of its own
// for the node's whole life, as the test rig holds one in-process (test/rig/testdriver.ts).
// It reconnects on its own if libvirtd restarts (LibvirtConnection) and closes on SIGTERM/SIGINT.
import { LibvirtConnection } from '../libvirt/index.ts';

/** The line the holder prints once its connection is open; `vk sandbox up` waits for it. */
export const HOLDING = 'holding the test driver';

export interface HoldOptions {
  socket: string;
  uri: string;
  /** One line per state change (stdout: the holder's log file). */
  say?: (line: string) => void;
}

/** Holds the connection until SIGTERM or SIGINT; resolves after it is closed. */
export async function holdTestDriver(o: HoldOptions): Promise<void> {
  const say = o.say ?? ((line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`));
  const conn = new LibvirtConnection({ target: { path: o.socket }, uri: o.uri, lifecycleEvents: false, reconnect: { maxDelayMs: 1000 } });
  const sub = conn.state$.subscribe((s) => {
    if (s === 'connected') say(`${HOLDING} ${o.uri} at ${o.socket} (pid ${process.pid}, connection ${conn.connectCount})`);
    else if (s === 'disconnected') say(`lost the connection to ${o.socket}; reconnecting (the test driver's state may be gone)`);
  });
  await new Promise<void>((resolve) => {
    const done = (sig: NodeJS.Signals): void => {
      say(`${sig}: closing the connection`);
      process.off('SIGTERM', done);
      process.off('SIGINT', done);
      resolve();
    };
    process.on('SIGTERM', done);
    process.on('SIGINT', done);
  });
  await conn.close();
  sub.unsubscribe();
}
