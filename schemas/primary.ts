// The primary coordinator's record (/config/primary) and the DHCP leases it keeps in ZooKeeper
// (/networks/<vni>/leases/<mac>). DESIGN §3 (wave 2) and §4 "Primary coordinator".
//
// Phases of /config/primary (who writes each one is in reconcilers/primary/plan.ts):
//   primary   `node` holds every gateway and runs DHCP/DNS; it owns the session-bound lock
//             /locks/primary.
//   gateways  a planned hand-over from `node` to `to` began: `to` adds every gateway and announces
//             it; `node` still holds everything.
//   release   `to` holds the gateways too (make-before-break); `node` removes its own, stops its
//             DHCP servers and hands the lock over.
//   dhcp      `node` (the new primary) holds the gateways, takes the lock and starts DHCP last.
import { z } from 'zod';
import { decodeWith, encodeWith } from './codec.ts';
import { MAC_PATTERN, MAC_RULE, TimestampSchema } from './formats.ts';
import { NameSchema } from './names.ts';
import { Ipv4AddressSchema } from './network.ts';

export const PRIMARY_PHASES = ['primary', 'gateways', 'release', 'dhcp'] as const;
export type PrimaryPhase = (typeof PRIMARY_PHASES)[number];

export const HANDOVER_RESULTS = ['completed', 'rolledBack', 'refused', 'elected'] as const;
export type HandoverResult = (typeof HANDOVER_RESULTS)[number];

const Timestamp = TimestampSchema;

/** One step of a hand-over, as it happened. */
export const PrimaryStepSchema = z.strictObject({ phase: z.enum(PRIMARY_PHASES), node: NameSchema, at: Timestamp });
export type PrimaryStep = z.output<typeof PrimaryStepSchema>;

/** How the last change of primary ended. */
export const PrimaryOutcomeSchema = z.strictObject({
  result: z.enum(HANDOVER_RESULTS),
  /** The primary before (absent when there was none). */
  from: NameSchema.optional(),
  /** The node asked for or elected. */
  to: NameSchema.optional(),
  message: z.string().max(1024),
  at: Timestamp,
  /** The phases of a planned hand-over, with when each began. */
  steps: z.array(PrimaryStepSchema).max(16).default([]),
});
export type PrimaryOutcome = z.output<typeof PrimaryOutcomeSchema>;

export const PrimaryRecordSchema = z.strictObject({
  /** The primary (phase primary/gateways/release) or the node taking over (phase dhcp). */
  node: NameSchema,
  phase: z.enum(PRIMARY_PHASES),
  /** When the current phase began. */
  since: Timestamp,
  /** Bumped each time a node takes the lock: a new term is a new primary. */
  term: z.number().int().min(0),
  /** phase gateways/release: the node taking over. */
  to: NameSchema.optional(),
  /** phase dhcp: the node that handed over. */
  from: NameSchema.optional(),
  /** A planned hand-over asked for (`vk node primary NAME`), not begun yet. */
  request: z.strictObject({ to: NameSchema, at: Timestamp }).optional(),
  /** The steps of the hand-over in progress. */
  steps: z.array(PrimaryStepSchema).max(16).default([]),
  last: PrimaryOutcomeSchema.optional(),
});
export type PrimaryRecord = z.output<typeof PrimaryRecordSchema>;
export type PrimaryRecordInput = z.input<typeof PrimaryRecordSchema>;

export function decodePrimaryRecord(value: unknown, fieldPrefix = 'primary'): PrimaryRecord {
  return decodeWith(PrimaryRecordSchema, value, fieldPrefix);
}
export function encodePrimaryRecord(record: PrimaryRecordInput): string {
  return encodeWith(PrimaryRecordSchema, record, 'primary');
}

/** /locks/primary: the ephemeral znode of the primary's session. */
export const PrimaryLockSchema = z.strictObject({ node: NameSchema, term: z.number().int().min(0), since: Timestamp });
export type PrimaryLock = z.output<typeof PrimaryLockSchema>;
export function decodePrimaryLock(value: unknown): PrimaryLock {
  return decodeWith(PrimaryLockSchema, value, 'lock');
}
export function encodePrimaryLock(lock: PrimaryLock): string {
  return encodeWith(PrimaryLockSchema, lock, 'lock');
}

export const MacAddressSchema = z.string().regex(MAC_PATTERN, MAC_RULE);

/** /networks/<vni>/leases/<mac>: one DHCP lease, written by the primary from dnsmasq's script. */
export const DhcpLeaseSchema = z.strictObject({
  mac: MacAddressSchema,
  ip: Ipv4AddressSchema,
  /** Client hostname, when it sent one. */
  hostname: z.string().max(253).optional(),
  /** DHCP client id, when it sent one. */
  clientId: z.string().max(255).optional(),
  /** Seconds since the epoch when the lease ends (0: infinite). */
  expires: z.number().int().min(0),
  /** The primary whose dnsmasq granted or renewed it last. */
  node: NameSchema,
  updatedAt: Timestamp,
});
export type DhcpLease = z.output<typeof DhcpLeaseSchema>;
export function decodeDhcpLease(value: unknown): DhcpLease {
  return decodeWith(DhcpLeaseSchema, value, 'lease');
}
export function encodeDhcpLease(lease: DhcpLease): string {
  return encodeWith(DhcpLeaseSchema, lease, 'lease');
}

/**
 * The gateway's virtual MAC for a network: locally administered unicast 02:76:6b ("vk") followed
 * by the 24-bit VNI, the same on every coordinator, so a hand-over needs no client ARP update.
 */
export function gatewayMac(vni: number): string {
  const hex = vni.toString(16).padStart(6, '0');
  return `02:76:6b:${hex.slice(0, 2)}:${hex.slice(2, 4)}:${hex.slice(4, 6)}`;
}
