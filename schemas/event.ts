// One entry of the events log (DESIGN §3 `/virtkeeper/events`: "a bounded ring of notable
// transitions"; §4 "Observability"). Each event is a persistent sequential child `e-<10 digits>`
// of /events (core/events.ts appends, lists, follows and trims them); `vk events` shows them.
//
//   {"at":"2026-01-01T00:00:03.120Z","kind":"fence.succeeded","by":"hv1","node":"hv3",
//    "level":"ipmi","message":"hv3 powered off (Chassis Power is off) in 412 ms"}
//
// `kind` is dotted lower camel case, the subject first: node.lost, fence.started,
// fence.succeeded, fence.failed, vm.recovered, vm.notRecovered, migration.completed,
// cluster.maintenance. `by` is the node whose daemon wrote it, or `vk` for the CLI.
// Invariant: an event never holds a secret (fence passwords and command env values stay in
// /nodes/<name>/fence; messages come from errors that hold none).
import { z } from 'zod';
import { decodeWith, encodeWith } from './codec.ts';
import { checkedString, textProblem, TimestampSchema, type Problem } from './formats.ts';
import { NameSchema } from './names.ts';

export const EVENT_KIND_PATTERN = /^[a-z][a-zA-Z0-9]*(\.[a-z][a-zA-Z0-9]*){1,3}$/;
export const EVENT_KIND_MAX_LENGTH = 64;
const kindProblem: Problem = (v) =>
  v.length <= EVENT_KIND_MAX_LENGTH && EVENT_KIND_PATTERN.test(v)
    ? undefined
    : `must be dotted lower camel case such as fence.succeeded or vm.notRecovered (2-4 parts of a-z first, then letters and digits; at most ${EVENT_KIND_MAX_LENGTH} characters)`;

export const EVENT_LEVEL_PATTERN = /^[a-z][a-zA-Z0-9]{0,31}$/;
const levelProblem: Problem = (v) => (EVENT_LEVEL_PATTERN.test(v) ? undefined : 'must be lower camel case, at most 32 characters (a fence level: ipmi, command, storage)');

/** The longest message an event holds. */
export const EVENT_MESSAGE_MAX = 1024;

/** Who wrote an event from the CLI. */
export const EVENT_BY_CLI = 'vk';

export const ClusterEventSchema = z.strictObject({
  /** When it happened, by the writer's clock. */
  at: TimestampSchema,
  kind: checkedString('event kind', kindProblem, { pattern: EVENT_KIND_PATTERN.source, maxLength: EVENT_KIND_MAX_LENGTH }),
  /** The node whose daemon wrote it, or `vk`. */
  by: NameSchema,
  /** The node it is about. */
  node: NameSchema.optional(),
  /** The VM it is about. */
  vm: NameSchema.optional(),
  /** The fence level it is about (fence.succeeded, fence.failed). */
  level: checkedString('level', levelProblem, { pattern: EVENT_LEVEL_PATTERN.source }).optional(),
  /** One line for people. */
  message: checkedString('message', textProblem(EVENT_MESSAGE_MAX, { allowEmpty: true })),
});
export type ClusterEvent = z.output<typeof ClusterEventSchema>;
export type ClusterEventInput = z.input<typeof ClusterEventSchema>;

export function decodeEvent(value: unknown, fieldPrefix = 'event'): ClusterEvent {
  return decodeWith(ClusterEventSchema, value, fieldPrefix);
}
export function encodeEvent(event: ClusterEventInput): string {
  return encodeWith(ClusterEventSchema, event, 'event');
}

/**
 * `text` made fit for an event's message: control characters (newlines included) become spaces,
 * runs of spaces one, and a text longer than EVENT_MESSAGE_MAX is cut with '…'.
 */
export function eventMessage(text: string): string {
  // eslint-disable-next-line no-control-regex
  const flat = text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').replace(/ {2,}/g, ' ').trim();
  return flat.length > EVENT_MESSAGE_MAX ? `${flat.slice(0, EVENT_MESSAGE_MAX - 1)}…` : flat;
}
