import type { z } from 'zod';
import { parseWith, ValidationError } from './errors.ts';

/** Accepts a parsed value, or JSON as a string or bytes (a znode's data). */
function fromJson(value: unknown, field: string): unknown {
  let text: string;
  if (typeof value === 'string') text = value;
  else if (value instanceof Uint8Array) text = new TextDecoder('utf-8', { fatal: false }).decode(value);
  else return value;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ValidationError(field || '(root)', text, `cannot be parsed: ${(error as Error).message}`, { kind: 'JSON' });
  }
}

/** Validates `value` (object, JSON text or bytes) against `schema`, filling defaults; throws ValidationError. */
export function decodeWith<S extends z.ZodType>(schema: S, value: unknown, fieldPrefix: string): z.output<S> {
  return parseWith(schema, fromJson(value, fieldPrefix), fieldPrefix);
}

/**
 * Validates and serialises. Parsing rebuilds every object in schema key order
 * and fills defaults, so equal values always give identical bytes whatever
 * the key order or omitted defaults of the input.
 */
export function encodeWith<S extends z.ZodType>(schema: S, value: z.input<S>, fieldPrefix: string): string {
  return JSON.stringify(parseWith(schema, value, fieldPrefix));
}

