// Decoding of domain lifecycle event messages (REMOTE_PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE).

import { filter, map, type Observable, type OperatorFunction } from 'rxjs';
import { lifecycleDetailName, lifecycleEventName, Proc, type LifecycleEventName } from './constants.ts';
import type { RemoteEvent } from './transport.ts';
import { readDomain, type Domain } from './types.ts';
import { XdrReader } from './xdr.ts';

export interface LifecycleEvent {
  callbackId: number;
  domain: Domain;
  /** virDomainEventType */
  event: number;
  /** virDomainEvent*DetailType of `event` */
  detail: number;
  eventName: LifecycleEventName;
  /** e.g. `booted`, `migrated`, `destroyed`; undefined for a detail this client does not know. */
  detailName: string | undefined;
}

/** remote_domain_event_callback_lifecycle_msg; null for an event type this client does not know. */
export function decodeLifecycle(body: Uint8Array): LifecycleEvent | null {
  const r = new XdrReader(body);
  const callbackId = r.int();
  const domain = readDomain(r);
  const event = r.int();
  const detail = r.int();
  r.done();
  const eventName = lifecycleEventName(event);
  if (eventName === undefined) return null;
  return { callbackId, domain, event, detail, eventName, detailName: lifecycleDetailName(event, detail) };
}

/** Picks lifecycle messages out of a connection's event stream; undecodable ones are skipped. */
export function lifecycleEvents(): OperatorFunction<RemoteEvent, LifecycleEvent> {
  return (source: Observable<RemoteEvent>) =>
    source.pipe(
      filter((m) => m.proc === Proc.DOMAIN_EVENT_CALLBACK_LIFECYCLE),
      map((m) => {
        try {
          return decodeLifecycle(m.body);
        } catch {
          return null;
        }
      }),
      filter((e): e is LifecycleEvent => e !== null),
    );
}
