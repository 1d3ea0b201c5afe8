// The Hypervisor interface over one reconnecting libvirt RPC connection.
import { distinctUntilChanged, map, type Observable } from 'rxjs';
import type { DomainRunState } from '../reconcilers/domain.ts';
import type { DomainSummary, Hypervisor, LifecycleNotice, NodeResources } from './hypervisor.ts';
import {
  ErrorCode,
  isLibvirtError,
  LibvirtConnection,
  ListDomainsFlags,
  type Domain,
  type DomainRef,
} from './libvirt/index.ts';

const RUN_STATES: readonly DomainRunState[] = ['nostate', 'running', 'blocked', 'paused', 'shutdown', 'shutoff', 'crashed', 'pmsuspended'];

function runState(state: number): DomainRunState {
  return RUN_STATES[state] ?? 'nostate';
}

export interface LibvirtHypervisorOptions {
  socket: string;
  uri: string;
  /** Bound on every call, so a wedged libvirtd cannot stall a reconcile forever. */
  callTimeoutMs?: number;
}

export class LibvirtHypervisor implements Hypervisor {
  readonly lifecycle$: Observable<LifecycleNotice>;
  readonly connected$: Observable<boolean>;

  private constructor(readonly conn: LibvirtConnection) {
    this.lifecycle$ = conn.lifecycle$.pipe(map((e) => ({ name: e.domain.name, event: e.eventName })));
    this.connected$ = conn.state$.pipe(
      map((s) => s === 'connected'),
      distinctUntilChanged(),
    );
  }

  static async open(o: LibvirtHypervisorOptions, timeoutMs = 10_000): Promise<LibvirtHypervisor> {
    const conn = await LibvirtConnection.open(
      { target: { path: o.socket }, uri: o.uri, defaultTimeoutMs: o.callTimeoutMs ?? 30_000 },
      timeoutMs,
    );
    return new LibvirtHypervisor(conn);
  }

  async getDomain(name: string): Promise<DomainSummary | null> {
    let ref: Domain;
    try {
      ref = await this.conn.domainLookupByName(name);
    } catch (error) {
      if (isLibvirtError(error, ErrorCode.NO_DOMAIN)) return null;
      throw error;
    }
    return this.summarise(ref).catch((error: unknown) => {
      // Gone between the lookup and the next call.
      if (isLibvirtError(error, ErrorCode.NO_DOMAIN)) return null;
      throw error;
    });
  }

  async listDomains(): Promise<DomainSummary[]> {
    const [all, persistent] = await Promise.all([
      this.conn.connectListAllDomains(0),
      this.conn.connectListAllDomains(ListDomainsFlags.PERSISTENT),
    ]);
    const persistentNames = new Set(persistent.map((d) => d.name));
    const infos = await Promise.all(
      all.map(async (d) => {
        try {
          const info = await this.conn.domainGetInfo(d);
          return {
            name: d.name,
            uuid: d.uuid,
            state: runState(info.state),
            persistent: persistentNames.has(d.name),
            memoryKiB: info.memoryKiB,
            vcpus: info.nrVirtCpu,
          };
        } catch (error) {
          if (isLibvirtError(error, ErrorCode.NO_DOMAIN)) return null;
          throw error;
        }
      }),
    );
    return infos.filter((d): d is DomainSummary => d !== null);
  }

  async listDomainNames(): Promise<string[]> {
    return (await this.conn.connectListAllDomains(0)).map((d) => d.name);
  }

  async define(xml: string): Promise<void> {
    await this.conn.domainDefineXmlFlags(xml, 0);
  }

  async start(name: string): Promise<void> {
    await this.conn.domainCreate(await this.ref(name));
  }

  async shutdown(name: string): Promise<void> {
    await this.conn.domainShutdown(await this.ref(name));
  }

  async destroy(name: string): Promise<void> {
    try {
      await this.conn.domainDestroy(await this.ref(name));
    } catch (error) {
      // Already off: the wanted end state.
      if (!isLibvirtError(error, ErrorCode.OPERATION_INVALID)) throw error;
    }
  }

  async undefine(name: string): Promise<void> {
    await this.conn.domainUndefineFlags(await this.ref(name), 0);
  }

  async nodeResources(): Promise<NodeResources> {
    const info = await this.conn.nodeGetInfo();
    return { memoryKiB: info.memoryKiB, cpus: info.cpus };
  }

  close(): Promise<void> {
    return this.conn.close();
  }

  private ref(name: string): Promise<DomainRef> {
    return this.conn.domainLookupByName(name);
  }

  private async summarise(ref: Domain): Promise<DomainSummary> {
    const [info, persistent] = await Promise.all([this.conn.domainGetInfo(ref), this.conn.domainIsPersistent(ref)]);
    return {
      name: ref.name,
      uuid: ref.uuid,
      state: runState(info.state),
      persistent,
      memoryKiB: info.memoryKiB,
      vcpus: info.nrVirtCpu,
    };
  }
}
