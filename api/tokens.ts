// Where a server's bearer tokens come from: a token file (read at start), and/or the znode
// /api/tokens, followed with a watch so an added or revoked token counts within the watch's
// latency, without a restart.
//
// Invariants: the set is fail-closed — a server told to use ZooKeeper's tokens answers 401 to
// every token until the znode is read, and with no znode (or an empty one) no stored token
// works; a znode that does not parse keeps the last good set (and an error is logged), never an
// empty or partial one.
import type { ZkStore } from '../drivers/zk/index.ts';
import type { ZkPaths } from '../schemas/index.ts';
import { parseTokenFile, type TokenEntry, type TokenSet } from './auth.ts';

/** What the server asks: who a token's hash is. */
export interface TokenLookup {
  get(hash: string): TokenEntry | undefined;
}

export class ZkTokens implements TokenLookup {
  private current: TokenSet = new Map();
  private readonly stopWatch: () => void;

  constructor(store: ZkStore, paths: ZkPaths, log: { info(obj: object, msg: string): void; error(obj: object, msg: string): void }) {
    const path = paths.apiTokens;
    this.stopWatch = store.followData(
      path,
      {
        next: (state) => {
          if (state.kind !== 'data') {
            this.current = new Map();
            log.info({ znode: path }, 'API tokens: none stored in ZooKeeper');
            return;
          }
          try {
            this.current = parseTokenFile(state.data.toString('utf8'), path);
            log.info({ znode: path, tokens: this.current.size }, 'API tokens: read from ZooKeeper');
          } catch (error) {
            log.error({ znode: path, err: error }, 'API tokens: the znode does not parse; keeping the tokens read before');
          }
        },
        error: (error: unknown) => log.error({ znode: path, err: error }, 'API tokens: the watch failed'),
        complete: () => undefined,
      },
      { expectAbsent: true },
    );
  }

  get(hash: string): TokenEntry | undefined {
    return this.current.get(hash);
  }

  get size(): number {
    return this.current.size;
  }

  stop(): void {
    this.stopWatch();
  }
}

/** The first source that knows the token. */
export function eitherTokens(...sources: readonly TokenLookup[]): TokenLookup {
  return { get: (hash) => sources.map((s) => s.get(hash)).find((e) => e !== undefined) };
}

export type { TokenSet };
