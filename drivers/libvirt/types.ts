// Codecs for the shared structs of remote_protocol.x: remote_nonnull_domain, remote_error, UUIDs.

import { REMOTE_STRING_MAX, VIR_UUID_BUFLEN } from './constants.ts';
import type { RemoteErrorFields } from './errors.ts';
import { XdrError, type XdrReader, type XdrWriter } from './xdr.ts';

/** remote_nonnull_domain. `id` is -1 for an inactive domain. */
export interface Domain {
  name: string;
  /** Canonical lower-case form, e.g. `6695eb01-f6a4-8304-79aa-97f2502e193f`. */
  uuid: string;
  id: number;
}

/** What a caller must name to address a domain: libvirtd resolves it by UUID. */
export type DomainRef = Pick<Domain, 'name' | 'uuid'> & { id?: number };

const UUID_RE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

export function uuidToBytes(uuid: string): Uint8Array {
  if (!UUID_RE.test(uuid)) throw new XdrError('invalid', `not a UUID: ${JSON.stringify(uuid)}`);
  return Uint8Array.from(Buffer.from(uuid.replace(/-/g, ''), 'hex'));
}

function uuidFromHex(h: string): string {
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

export function writeDomain(w: XdrWriter, d: DomainRef): void {
  w.string(d.name, REMOTE_STRING_MAX);
  w.fixedOpaque(uuidToBytes(d.uuid), VIR_UUID_BUFLEN);
  w.int(d.id ?? -1);
}

/** Smallest encoding of remote_nonnull_domain: empty name (4) + uuid (16) + id (4). */
export const DOMAIN_MIN_BYTES = 24;

export function readDomain(r: XdrReader): Domain {
  const name = r.string(REMOTE_STRING_MAX);
  const uuid = uuidFromHex(r.fixedOpaqueHex(VIR_UUID_BUFLEN));
  const id = r.int();
  return { name, uuid, id };
}

const readOptString = (r: XdrReader): string | null => r.optional((rr) => rr.string(REMOTE_STRING_MAX));

/** remote_error; the unused `dom` and `net` members are read and dropped. */
export function readRemoteError(r: XdrReader): RemoteErrorFields {
  const code = r.int();
  const domain = r.int();
  const message = readOptString(r);
  const level = r.int();
  r.optional(readDomain);
  const str1 = readOptString(r);
  const str2 = readOptString(r);
  const str3 = readOptString(r);
  const int1 = r.int();
  const int2 = r.int();
  r.optional((rr) => {
    rr.string(REMOTE_STRING_MAX);
    rr.fixedOpaque(VIR_UUID_BUFLEN);
  });
  return { code, domain, message, level, str1, str2, str3, int1, int2 };
}
