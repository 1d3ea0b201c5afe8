import { assertChecked, checkedString, hasControlChars, type Problem } from './formats.ts';
import { ValidationError } from './errors.ts';

export const NAME_MAX_LENGTH = 63;
export const NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const NAME_RULE =
  "must be a DNS label (lower-case a-z, 0-9, '-'; not starting or ending with '-'; at most 63 characters)";

function hint(name: string): string {
  if (name.length === 0) return 'it is empty';
  if (name.length > NAME_MAX_LENGTH) return `it has ${name.length} characters`;
  if (hasControlChars(name)) return 'it contains a control character';
  if (name.includes('/')) return "it contains '/'";
  if (name.includes('.')) return "it contains '.'";
  if (/[A-Z]/.test(name)) return 'it contains upper-case letters; names are lower-case only, as in Kubernetes';
  if (name.startsWith('-') || name.endsWith('-')) return "it starts or ends with '-'";
  const bad = [...name].find((ch) => !/[a-z0-9-]/.test(ch));
  return bad === undefined ? 'it is malformed' : `it contains ${JSON.stringify(bad)}`;
}

/** Why `name` is not a valid VM/node name (undefined if it is valid). */
export const nameProblem: Problem = (name) => (NAME_PATTERN.test(name) ? undefined : `${NAME_RULE}; ${hint(name)}`);

export function isValidName(name: unknown): name is string {
  return typeof name === 'string' && NAME_PATTERN.test(name);
}

/** Returns `name` if it is a valid VM/node name, else throws a ValidationError naming `field`. */
export function assertName(name: unknown, field = 'name'): string {
  return assertChecked('name', nameProblem, name, field);
}

/** VM, node and coordinator names. */
export const NameSchema = checkedString('name', nameProblem, {
  pattern: NAME_PATTERN.source,
  maxLength: NAME_MAX_LENGTH,
  description: "DNS label: lower-case a-z, 0-9 and '-', at most 63 characters",
});

export const VNI_MIN = 1;
export const VNI_MAX = 16_777_215;
const VNI_PATTERN = /^[1-9][0-9]{0,7}$/;
const VNI_RULE = `must be a VXLAN network identifier: a decimal integer from ${VNI_MIN} to ${VNI_MAX} without leading zeros`;

/** Why `vni` is not a valid network name (undefined if it is valid). */
export const vniProblem: Problem = (vni) =>
  VNI_PATTERN.test(vni) && Number(vni) <= VNI_MAX ? undefined : VNI_RULE;

export function isValidVni(vni: unknown): vni is string {
  return typeof vni === 'string' && vniProblem(vni) === undefined;
}

/** Returns the canonical string form of a VNI given as a string or an integer; throws a ValidationError otherwise. */
export function assertVni(vni: unknown, field = 'vni'): string {
  if (typeof vni === 'number') {
    if (!Number.isInteger(vni) || vni < VNI_MIN || vni > VNI_MAX) {
      throw new ValidationError(field, vni, VNI_RULE, { kind: 'VNI' });
    }
    return String(vni);
  }
  return assertChecked('VNI', vniProblem, vni, field);
}

/** Network names: VNIs as decimal strings. */
export const VniSchema = checkedString('VNI', vniProblem, {
  pattern: '^[1-9][0-9]{0,7}$',
  description: `VXLAN network identifier, ${VNI_MIN}..${VNI_MAX}, as a decimal string`,
});
