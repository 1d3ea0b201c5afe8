// The floor of the reaction benches measured with the project's own ZooKeeper client (ZkStore):
// a version-checked write by one store seen by another store's data watch (followData, the
// informers' path), write call → value delivered.
import { ZkStore } from '../../drivers/zk/index.ts';
import { nsToMs } from './stats.ts';

export async function measureStoreWatch(connectString: string, path: string, n: number): Promise<number[]> {
  const writer = await ZkStore.connect({ connectString });
  const watcher = await ZkStore.connect({ connectString });
  try {
    await writer.create(path, '0', { parents: true });
    let waiting: { version: number; t0: bigint; resolve: (ms: number) => void } | null = null;
    let ready!: () => void;
    const first = new Promise<void>((r) => (ready = r));
    const stop = watcher.followData(path, {
      next: (state) => {
        if (state.kind !== 'data') return;
        if (state.version === 0) ready();
        if (!waiting || state.version < waiting.version) return;
        const w = waiting;
        waiting = null;
        w.resolve(nsToMs(process.hrtime.bigint() - w.t0));
      },
      error: () => undefined,
      complete: () => undefined,
    });
    await first;
    const out: number[] = [];
    for (let version = 0; version < n; version++) {
      out.push(
        await new Promise<number>((resolve, reject) => {
          waiting = { version: version + 1, t0: process.hrtime.bigint(), resolve };
          writer.set(path, String(version + 1), version).catch(reject);
        }),
      );
    }
    stop();
    return out;
  } finally {
    await writer.close();
    await watcher.close();
  }
}
