// A watch-fed copy of the cluster config (/virtkeeper/config), shared by every concern.
//
// Invariants:
//   K1  `value` is always a whole, valid ClusterConfig: the defaults while the znode is absent,
//       and the last readable one while it is unreadable (a bad write never half-applies).
//   K2  synced() resolves after the first answer of the watch — the config, its absence, or a
//       watch error (NoAuth and the like: the defaults stay in force, and the error is logged).
//   K3  changes$ emits after every answer, the first included.
import { Subject, type Subscription } from 'rxjs';
import type { Logger } from 'pino';
import { decodeClusterConfig, defaultClusterConfig, type ClusterConfig, type ZkPaths } from '../../schemas/index.ts';
import type { ZkStore } from '../../drivers/zk/index.ts';
import { SyncGate } from './sync-gate.ts';

export class ConfigInformer {
  private current: ClusterConfig = defaultClusterConfig();
  private sub: Subscription | undefined;
  private answered = false;
  private readonly gate = new SyncGate(() => this.answered);
  readonly changes$ = new Subject<ClusterConfig>();

  constructor(
    private readonly store: ZkStore,
    private readonly paths: ZkPaths,
    private readonly log: Logger,
  ) {}

  get value(): ClusterConfig {
    return this.current;
  }

  start(): void {
    this.sub = this.store.watchData(this.paths.config).subscribe({
      next: (s) => {
        if (s.kind === 'deleted') this.current = defaultClusterConfig();
        else {
          try {
            this.current = decodeClusterConfig(s.data.toString('utf8'));
          } catch (error) {
            this.log.warn({ err: error }, 'unreadable cluster config; keeping the one in force');
          }
        }
        this.answer();
      },
      error: (error: unknown) => {
        this.log.error({ err: error }, 'cannot watch the cluster config; the settings in force stay');
        this.answer();
      },
    });
  }

  stop(): void {
    this.sub?.unsubscribe();
    this.changes$.complete();
  }

  synced(): Promise<void> {
    return this.gate.wait();
  }

  private answer(): void {
    this.answered = true;
    this.gate.check();
    this.changes$.next(this.current);
  }
}
