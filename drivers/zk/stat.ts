// Conversion of node-zookeeper-client's raw Stat (longs as 8-byte Buffers) to ZkStat.
import type { Stat } from 'node-zookeeper-client';
import type { ZkStat } from './types.ts';

/** A signed 64-bit big-endian long as bigint (0n when absent). */
export function longToBigInt(b: Buffer | undefined | null): bigint {
  return b && b.length === 8 ? b.readBigInt64BE(0) : 0n;
}

/** Session ids and ephemeral owners: 16 lowercase hex digits. */
export function sessionIdHex(b: Buffer): string {
  return b.toString('hex');
}

export function toZkStat(s: Stat): ZkStat {
  const owner = s.ephemeralOwner;
  return {
    version: s.version,
    cversion: s.cversion,
    aversion: s.aversion,
    czxid: longToBigInt(s.czxid),
    mzxid: longToBigInt(s.mzxid),
    pzxid: longToBigInt(s.pzxid),
    ctime: Number(longToBigInt(s.ctime)),
    mtime: Number(longToBigInt(s.mtime)),
    ephemeralOwner: owner && owner.some((x) => x !== 0) ? sessionIdHex(owner) : null,
    dataLength: s.dataLength,
    numChildren: s.numChildren,
  };
}
