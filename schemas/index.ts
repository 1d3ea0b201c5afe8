// Public API of schemas/: the ZooKeeper key layout, codecs and validation for every object.
export { ValidationError, formatValue, formatIssue, fromZodError, issuesFromZod, parseWith } from './errors.ts';
export type { ValidationIssue, ValidationErrorOptions } from './errors.ts';
export { ZkPaths, DEFAULT_ROOT } from './paths.ts';
export type { ZkPathInfo } from './paths.ts';
export {
  NAME_MAX_LENGTH,
  NAME_PATTERN,
  NAME_RULE,
  NameSchema,
  VNI_MAX,
  VNI_MIN,
  VniSchema,
  assertName,
  assertVni,
  isValidName,
  isValidVni,
  nameProblem,
  vniProblem,
} from './names.ts';
export {
  InterfaceNameSchema,
  MAC_PATTERN,
  RbdImageSchema,
  Sha256Schema,
  TimestampSchema,
  camelCaseProblem,
  interfaceNameProblem,
  rbdImageProblem,
  timestampProblem,
} from './formats.ts';
export type { Problem } from './formats.ts';
export { parseCidr, ipv4InSubnet, ipv4Problem, unicastIpv4Problem, gatewayProblem } from './ip.ts';
export type { Cidr, IpFamily } from './ip.ts';
export { CONDITION_STATUSES, ConditionSchema, ConditionListSchema } from './condition.ts';
export type { Condition } from './condition.ts';
export * from './vm.ts';
export * from './network.ts';
export * from './node.ts';
export * from './config.ts';
export * from './primary.ts';
export * from './rbd.ts';
export { domainXmlSizeProblem, MAX_DOMAIN_XML_BYTES, MAX_DOMAIN_XML_DEPTH, parseDomainXml, parseVmXml, VmXml, xmlHash } from './domain-xml.ts';
export type { DomainInfo } from './domain-xml.ts';
export * from './manifest.ts';
export * from './fence.ts';
export * from './event.ts';
