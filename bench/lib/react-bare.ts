// The least any daemon could do between a ZooKeeper write and libvirt's event, for bench/react's
// reference: a process of its own (the daemon's V8 flags) with the project's ZooKeeper and libvirt
// clients and nothing between them. It follows one znode; each new version's text is "running" or
// "stopped", and the data's arrival sends DOMAIN_CREATE or DOMAIN_DESTROY for one domain at once:
// no decode, no queue, no plan, no status. It also follows the floor znode, as the daemon does.
// Talks to the bench over IPC:
//   → { ready: true } once both clients are open and the domain is shut off
//   → { floorSeen: version, t } when the floor znode's new version reaches its session
//   ← { cmd: 'settle', id } → { id, marks } once the last call sent has been answered; marks: when
//     it was sent (process.hrtime, as every process of the machine reads it)
//   ← { cmd: 'stop', id } → { id } once both clients are closed
// Usage (by bench/react): react-bare.ts ZK_CONNECT LIBVIRT_SOCKET DOMAIN WANT_PATH FLOOR_PATH
// (the domain is defined and both znodes exist)
import { LibvirtHypervisor } from '../../drivers/libvirt-hypervisor.ts';
import { ZkStore } from '../../drivers/zk/index.ts';

const [connectString, socket, domain, wantPath, floorPath] = process.argv.slice(2) as [string, string, string, string, string];
if (!process.send || !floorPath) throw new Error('react-bare runs as a child of bench/react, with an IPC channel');
const send = (message: object): void => void process.send!(message);

const store = await ZkStore.connect({ connectString });
const hv = await LibvirtHypervisor.open({ socket, uri: 'test:///default' });
await hv.destroy(domain);
let last: Promise<unknown> = Promise.resolve();
let marks: Array<{ what: string; t: string }> = [];
let first = true;
const stopWant = store.followData(wantPath, {
  next: (state) => {
    if (state.kind !== 'data') return;
    // The znode's text when this starts is no request.
    if (first) return void (first = false);
    const want = state.data.toString('utf8');
    last = want === 'running' ? hv.start(domain) : want === 'stopped' ? hv.destroy(domain) : last;
    marks.push({ what: 'call sent', t: process.hrtime.bigint().toString() });
  },
  error: () => undefined,
  complete: () => undefined,
});
const stopFloor = store.followData(floorPath, {
  next: (state) => {
    if (state.kind === 'data') send({ floorSeen: state.version, t: process.hrtime.bigint().toString() });
  },
  error: () => undefined,
  complete: () => undefined,
});

process.on('message', (m: { cmd: 'settle' | 'stop'; id: number }) => {
  if (m.cmd === 'settle') {
    void last.then(() => {
      send({ id: m.id, marks });
      marks = [];
    });
  } else {
    stopWant();
    stopFloor();
    void Promise.all([hv.close(), store.close()]).then(() => {
      send({ id: m.id });
      process.disconnect();
    });
  }
});
send({ ready: true });
