// The node's ephemeral `alive` znode: present exactly while this daemon holds a ZooKeeper session.
//
// Re-created on every new session (after expiry the old one is gone with its
// session). A leftover of a previous daemon's session (a crash restart inside
// the session timeout) is waited out, never deleted: it may also be a second
// daemon started with the same node name, which must not be displaced.
import { Subscription, filter, firstValueFrom } from 'rxjs';
import type { Logger } from 'pino';
import { NodeExistsError, type ZkStore } from '../drivers/zk/index.ts';

export class AliveMarker {
  private sub: Subscription | undefined;
  private stopped = false;

  constructor(
    private readonly store: ZkStore,
    private readonly path: string,
    private readonly payload: () => string,
    private readonly log: Logger,
  ) {}

  /** Creates the znode now and again on every new session. Resolves once it first exists. */
  async start(): Promise<void> {
    await this.ensure();
    this.sub = this.store.sessions$.subscribe(() => {
      this.ensure().catch((error: unknown) => this.log.error({ err: error }, 'could not re-create the alive znode'));
    });
  }

  stop(): void {
    this.stopped = true;
    this.sub?.unsubscribe();
  }

  private async ensure(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.store.create(this.path, this.payload(), { mode: 'ephemeral', parents: true });
        this.log.info({ path: this.path, session: this.store.sessionId }, 'alive znode created');
        return;
      } catch (error) {
        if (!(error instanceof NodeExistsError)) throw error;
      }
      const stat = await this.store.exists(this.path);
      if (stat?.ephemeralOwner === this.store.sessionId) return;
      this.log.warn({ path: this.path, owner: stat?.ephemeralOwner }, 'alive znode held by another session; waiting for it to go');
      await firstValueFrom(this.store.watchData(this.path).pipe(filter((s) => s.kind === 'deleted')));
    }
  }
}
