// The least any daemon could do between a ZooKeeper write and libvirt's event, for bench/react's
// reference: a process of its own (the daemon's V8 flags) with the project's ZooKeeper and libvirt
// clients and nothing between them. It follows one znode; each new version's text is "running" or
// "stopped", and the data's arrival sends DOMAIN_CREATE or DOMAIN_DESTROY for one domain at once:
// no decode, no queue, no plan, no status. It also follows the floor znode, as the daemon does.
// Talks to the bench over IPC:
//   → { ready: true } once both clients are open, the domain is shut off and the znode is read
//   → { floorSeen: version, t } when the floor znode's new version reaches its session
//   ← { cmd: 'settle', id } → { id, marks } once the last call sent has been answered; marks: when
//     it was sent (process.hrtime, as every process of the machine reads it)
//   ← { cmd: 'stop', id } → { id } once both clients are closed
// Usage (by bench/react): react-bare.ts ZK_CONNECT LIBVIRT_SOCKET DOMAIN WANT_PATH FLOOR_PATH
// (the domain is defined and both znodes exist)
import { LibvirtHypervisor } from '../../drivers/libvirt-hypervisor.ts';
import { ZkStore } from '../../drivers/zk/index.ts';
import { serveBench, type ReactorChild } from './reactor-child.ts';

const [connectString, socket, domain, wantPath, floorPath] = process.argv.slice(2) as [string, string, string, string, string];
if (!floorPath) throw new Error('usage: react-bare.ts ZK_CONNECT LIBVIRT_SOCKET DOMAIN WANT_PATH FLOOR_PATH');

const store = await ZkStore.connect({ connectString });
const hv = await LibvirtHypervisor.open({ socket, uri: 'test:///default' });
await hv.destroy(domain);
let last: Promise<unknown> = Promise.resolve();
let bench: ReactorChild | undefined;
let followed!: () => void;
const firstRead = new Promise<void>((resolve) => (followed = resolve));
const stopWant = store.followData(wantPath, {
  next: (state) => {
    if (state.kind !== 'data') return;
    // The znode's text when this starts is no request; the bench writes only once this is ready.
    if (!bench) return followed();
    const want = state.data.toString('utf8');
    last = want === 'running' ? hv.start(domain) : want === 'stopped' ? hv.destroy(domain) : last;
    bench.mark('call sent');
  },
  error: () => undefined,
  complete: () => undefined,
});
await firstRead;
bench = serveBench(store, floorPath, {
  settled: () => last,
  stop: () => {
    stopWant();
    return Promise.all([hv.close(), store.close()]);
  },
});
