import { z } from 'zod';
import { camelCaseString, checkedString, textProblem, TimestampSchema } from './formats.ts';
import { noDuplicates } from './rules.ts';

export const CONDITION_STATUSES = ['True', 'False', 'Unknown'] as const;

export const ReasonSchema = camelCaseString('reason');
export const MessageSchema = checkedString('message', textProblem(4096, { allowEmpty: true, multiline: true }));

/** A Kubernetes-style status condition. */
export const ConditionSchema = z.strictObject({
  type: camelCaseString('condition type'),
  status: z.enum(CONDITION_STATUSES),
  reason: ReasonSchema,
  message: MessageSchema,
  lastTransitionTime: TimestampSchema,
});
export type Condition = z.output<typeof ConditionSchema>;

/** Conditions keyed by type: at most one of each. */
export const ConditionListSchema = z
  .array(ConditionSchema)
  .default([])
  .superRefine((list, ctx) =>
    noDuplicates(
      list.map((c) => c.type),
      ctx,
      [],
      'condition type',
      ['type'],
    ),
  );
