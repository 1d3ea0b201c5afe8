// A child process that renews one IPv4 address the way the primary coordinator renews a gateway
// (test/network/deadline.test.ts freezes it): every few ms a "confirmation" (here: a 5 ms wait),
// then `address change` with a valid lifetime of 1 s through applyBatch, bounded by a deadline
// 400 ms after the confirmation was asked for. A confirmation found stale (this process was
// frozen) ends the renewals for good, as the daemon drops everything. It holds a daemon-sized
// heap, so forking an `ip` takes as long as it does from the daemon.
// argv: <netns> <device> <cidr>. Prints "renewing" once its first renewal landed.
import { IpDeadlineError, applyBatch } from '../../drivers/net/ip.ts';

const [netns, device, cidr] = process.argv.slice(2);
if (!netns || !device || !cidr) throw new Error('usage: address-renewer <netns> <device> <cidr>');
const BOUND_MS = 400;
const heap = Buffer.alloc(100 * 1024 * 1024, 1);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let said = false;
for (;;) {
  const readAt = Date.now();
  await sleep(5);
  if (Date.now() - readAt > BOUND_MS) break;
  try {
    const r = await applyBatch([`address change ${cidr} dev ${device} valid_lft 1 preferred_lft 1`], { netns, notAfterMs: readAt + BOUND_MS });
    if (!said && r.failures.length === 0) {
      said = true;
      process.stdout.write('renewing\n');
    }
  } catch (error) {
    if (!(error instanceof IpDeadlineError)) throw error;
  }
  if (Date.now() - readAt > BOUND_MS) break;
}
process.stdout.write(`stopped ${heap.length}\n`);
// Stays (renewing nothing) until the test kills it: an exit would look like a freeze that ended.
setInterval(() => undefined, 1 << 30);
