// The child side of bench/lib/reactor.ts, as react-daemon.ts and react-bare.ts both speak it:
// the floor znode's versions reported as they reach the child's ZooKeeper session, and the
// bench's settle / stop commands answered.
import type { ZkStore } from '../../drivers/zk/index.ts';

/** One mark as it crosses the IPC channel: the time is process.hrtime's bigint, as a string. */
export type ReactorMark = { what: string; t: string };

export interface ReactorChild {
  /** Records `what` now (process.hrtime: one clock for every process of the machine). */
  mark(what: string): void;
}

/**
 * Starts serving the bench: floor versions seen on `store`'s session; `settle` answered with the
 * marks recorded since the last one once `settled()` resolves; `stop` answered once `stop()` has
 * closed everything (the floor follow ends first), then the channel closes. Says ready at once.
 */
export function serveBench(store: ZkStore, floorPath: string, o: { settled(): Promise<unknown>; stop(): Promise<unknown> }): ReactorChild {
  if (!process.send) throw new Error('a reactor runs as a child of bench/react, with an IPC channel');
  const send = (message: object): void => void process.send!(message);
  let marks: ReactorMark[] = [];
  const unfollow = store.followData(floorPath, {
    next: (state) => {
      if (state.kind === 'data') send({ floorSeen: state.version, t: process.hrtime.bigint().toString() });
    },
    error: () => undefined,
    complete: () => undefined,
  });
  process.on('message', (m: { cmd: 'settle' | 'stop'; id: number }) => {
    if (m.cmd === 'settle') {
      void o.settled().then(() => {
        send({ id: m.id, marks });
        marks = [];
      });
    } else {
      unfollow();
      void o.stop().then(() => {
        send({ id: m.id });
        process.disconnect();
      });
    }
  });
  send({ ready: true });
  return { mark: (what) => void marks.push({ what, t: process.hrtime.bigint().toString() }) };
}
