// The baseline every latency bench is compared against: a write by one raw node-zookeeper-client
// seen by another client's one-shot watch (re-armed with getData), measured write call → data.
import zookeeper from 'node-zookeeper-client';
import type { Client, Stat } from 'node-zookeeper-client';
import { nsToMs } from './stats.ts';

function connectRaw(connectString: string): Promise<Client> {
  const c = zookeeper.createClient(connectString, { sessionTimeout: 10_000 });
  return new Promise((resolve) => {
    c.once('connected', () => resolve(c));
    c.connect();
  });
}

/** Latencies in ms of `n` sequential writes to `path` (created here) as seen by a watching client. */
export async function measureRawWatch(connectString: string, path: string, n: number): Promise<number[]> {
  const writer = await connectRaw(connectString);
  const watcher = await connectRaw(connectString);
  await new Promise<void>((res, rej) => writer.create(path, Buffer.from('0'), (e) => (e ? rej(e) : res())));
  let waiting: { version: number; t0: bigint; resolve: (ms: number) => void } | null = null;
  const onData = (err: unknown, _data: Buffer, stat: Stat): void => {
    if (err || !waiting || stat.version < waiting.version) return;
    const w = waiting;
    waiting = null;
    w.resolve(nsToMs(process.hrtime.bigint() - w.t0));
  };
  const watch = (): void => watcher.getData(path, watch, onData);
  await new Promise<void>((res) => watcher.getData(path, watch, () => res()));
  const out: number[] = [];
  for (let version = 0; version < n; version++) {
    out.push(
      await new Promise<number>((resolve, reject) => {
        waiting = { version: version + 1, t0: process.hrtime.bigint(), resolve };
        writer.setData(path, Buffer.from(String(version + 1)), version, (e) => e && reject(e));
      }),
    );
  }
  writer.close();
  watcher.close();
  return out;
}
