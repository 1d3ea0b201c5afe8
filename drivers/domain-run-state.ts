// A libvirt domain's run state, as the hypervisor driver reports it and the reconcilers plan on it.
// Types and one pure predicate, no I/O: drivers and reconcilers both import it from here (a driver
// never imports a reconciler).

/** libvirt's domain states, by name, in libvirt's numbering (virDomainState: index = number). */
export const DOMAIN_RUN_STATES = ['nostate', 'running', 'blocked', 'paused', 'shutdown', 'shutoff', 'crashed', 'pmsuspended'] as const;

/** libvirt's domain states, by name. */
export type DomainRunState = (typeof DOMAIN_RUN_STATES)[number];

/** A domain of the local hypervisor: its run state and whether it is defined (persistent). */
export interface LocalDomain {
  state: DomainRunState;
  persistent: boolean;
}

/** States in which the guest occupies the hypervisor (counts as "running" for convergence). */
export const ACTIVE_RUN_STATES: ReadonlySet<DomainRunState> = new Set(['running', 'blocked', 'paused', 'shutdown', 'pmsuspended']);

export function isActive(domain: LocalDomain | null): boolean {
  return domain !== null && ACTIVE_RUN_STATES.has(domain.state);
}
