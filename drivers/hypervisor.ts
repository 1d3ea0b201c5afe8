// The hypervisor as the reconcilers need it: domains by name, their state, and lifecycle events.
// One real implementation (libvirt-hypervisor.ts) speaks libvirt's RPC protocol.
import type { Observable } from 'rxjs';
import type { DomainRunState } from '../reconcilers/domain.ts';

export interface DomainSummary {
  name: string;
  uuid: string;
  state: DomainRunState;
  persistent: boolean;
  /** Current memory of the domain (libvirt's domain info), KiB. */
  memoryKiB: number;
  vcpus: number;
}

export interface NodeResources {
  memoryKiB: number;
  cpus: number;
}

export interface LifecycleNotice {
  name: string;
  event: string;
}

export interface Hypervisor {
  getDomain(name: string): Promise<DomainSummary | null>;
  listDomains(): Promise<DomainSummary[]>;
  /** Names only: one call however many domains there are. */
  listDomainNames(): Promise<string[]>;
  define(xml: string): Promise<void>;
  start(name: string): Promise<void>;
  /** Asks the guest to shut down (ACPI); returns at once. */
  shutdown(name: string): Promise<void>;
  destroy(name: string): Promise<void>;
  undefine(name: string): Promise<void>;
  nodeResources(): Promise<NodeResources>;
  /** "Look at this domain again" signals. */
  readonly lifecycle$: Observable<LifecycleNotice>;
  readonly connected$: Observable<boolean>;
  close(): Promise<void>;
}
