import { createHash } from 'node:crypto';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { ValidationError } from './errors.ts';
import { hasControlChars, interfaceNameProblem, rbdImageProblem } from './formats.ts';
import { nameProblem } from './names.ts';

/** What virtkeeper needs to know of a libvirt domain definition. */
export interface DomainInfo {
  /** Domain name, which is also the VM name. */
  name: string;
  /** Lower-case 8-4-4-4-12 hex; undefined when the XML lets libvirt pick one. */
  uuid: string | undefined;
  memoryKiB: number;
  vcpus: number;
  /** Bridges of `<interface type='bridge'>` devices, without repeats, in document order. */
  bridges: string[];
  /** 'pool/image' of every `<disk type='network'>` with an RBD source, without repeats. */
  rbd: string[];
  /**
   * Writable disks that are not on RBD (`<disk device='disk'|'lun'>` without `<readonly/>`), as
   * "TARGET (TYPE SOURCE)": a storage fence (a Ceph blocklist) cannot cover a VM that has one.
   */
  otherDisks: string[];
  /** Log file of the first `<serial>` (else `<console>`) that has one. */
  serialLog: string | undefined;
  /** The domain's `type` attribute: kvm, qemu, test… */
  type: string;
}

/** sha256 hex of the XML text, to notice that a domain's XML changed. */
export function xmlHash(xml: string): string {
  return createHash('sha256').update(xml, 'utf8').digest('hex');
}

type XmlNode = Record<string, unknown>;

/**
 * The largest domain XML virtkeeper takes: 512 KiB of UTF-8. It is stored in one znode, written
 * in one multi with the VM's spec, and ZooKeeper refuses requests over 1 MiB (jute.maxbuffer) by
 * dropping the connection. Real domain XML is a few KiB.
 */
export const MAX_DOMAIN_XML_BYTES = 512 * 1024;
/** The deepest element nesting taken (a real domain is under 10 deep; libxml2 stops at 256). */
export const MAX_DOMAIN_XML_DEPTH = 100;

/** Why `bytes` of domain XML are too many, or undefined. */
export function domainXmlSizeProblem(bytes: number): string | undefined {
  if (bytes <= MAX_DOMAIN_XML_BYTES) return undefined;
  return `is ${bytes} bytes, larger than the limit of ${MAX_DOMAIN_XML_BYTES / 1024} KiB (${MAX_DOMAIN_XML_BYTES} bytes) for a domain XML`;
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
  // Decodes numeric character references (&#65;) as libxml2 does; checkCharacters has already
  // refused the named entities libxml2 would not know.
  htmlEntities: true,
  // Every element becomes an array, so one <disk> and three <disk>s read the same way.
  isArray: (_name: string, _path: unknown, _isLeaf: boolean, isAttribute: boolean) => !isAttribute,
  maxNestedTags: MAX_DOMAIN_XML_DEPTH,
});

// Bytes per unit, as libvirt defines them (formatdomain.html#memory-allocation).
const MEMORY_UNITS: Record<string, number> = {
  b: 1,
  bytes: 1,
  KB: 1e3,
  k: 1024,
  KiB: 1024,
  MB: 1e6,
  M: 1024 ** 2,
  MiB: 1024 ** 2,
  GB: 1e9,
  G: 1024 ** 3,
  GiB: 1024 ** 3,
  TB: 1e12,
  T: 1024 ** 4,
  TiB: 1024 ** 4,
};

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DOMAIN_TYPE = /^[a-z][a-z0-9]{0,31}$/;

class DomainReader {
  constructor(private readonly field: string) {}

  fail(path: string, value: unknown, reason: string, kind?: string): never {
    throw new ValidationError(`${this.field}${path}`, value, reason, { kind, showValue: value !== undefined });
  }

  /** Child elements called `tag` (an element with only text comes back as a string; treat it as empty). */
  children(node: XmlNode, tag: string): XmlNode[] {
    const list = node[tag];
    if (!Array.isArray(list)) return [];
    return list.map((child) => (typeof child === 'object' && child !== null ? (child as XmlNode) : {}));
  }

  /** Text of the single child `tag`; undefined when absent; error when repeated. */
  text(node: XmlNode, tag: string, path: string): string | undefined {
    const list = node[tag];
    if (!Array.isArray(list) || list.length === 0) return undefined;
    if (list.length > 1) this.fail(`${path}/${tag}`, undefined, `<${tag}> appears ${list.length} times`);
    const only = list[0] as unknown;
    if (typeof only === 'string') return only;
    const text = (only as XmlNode)['#text'];
    return typeof text === 'string' ? text : '';
  }

  attribute(node: XmlNode, name: string): string | undefined {
    const value = node[`@_${name}`];
    return typeof value === 'string' ? value : undefined;
  }
}

function validateWellFormed(xml: string, field: string): void {
  if (/<!DOCTYPE/i.test(xml)) {
    throw new ValidationError(field, firstLine(xml, /<!DOCTYPE/i), 'DOCTYPE declarations are not allowed in domain XML', {
      kind: 'XML',
    });
  }
  checkCharacters(xml, field);
  checkComments(xml, field);
  const result = XMLValidator.validate(xml);
  if (result === true) return;
  const { line, col, msg } = result.err;
  const lines = xml.split('\n');
  const where = col === undefined ? `line ${line}` : `line ${line}, column ${col}`;
  throw new ValidationError(field, (lines[line - 1] ?? '').trim(), `malformed XML at ${where}: ${msg}`, { kind: 'XML' });
}

// XML 1.0 forbids '--' inside a comment and a comment ending in '-'; libxml2 (libvirt) refuses
// them, fast-xml-parser does not.
function checkComments(xml: string, field: string): void {
  for (const match of xml.matchAll(/<!--([\s\S]*?)-->/g)) {
    const body = match[1] ?? '';
    if (!body.includes('--') && !body.endsWith('-')) continue;
    const line = xml.slice(0, match.index).split('\n').length;
    throw new ValidationError(field, match[0].slice(0, 80), `malformed XML at line ${line}: '--' is not allowed inside a comment`, { kind: 'XML' });
  }
}

// The XML 1.0 `Char` production.
function isXmlChar(code: number): boolean {
  return (
    code === 0x9 ||
    code === 0xa ||
    code === 0xd ||
    (code >= 0x20 && code <= 0xd7ff) ||
    (code >= 0xe000 && code <= 0xfffd) ||
    (code >= 0x10000 && code <= 0x10ffff)
  );
}

const PREDEFINED_ENTITIES = new Set(['amp', 'lt', 'gt', 'quot', 'apos']);

/**
 * Refuses what libxml2 (libvirt's parser) refuses but fast-xml-parser lets
 * through or silently drops: control characters, raw or as references, and
 * entities no DTD defines.
 */
function checkCharacters(xml: string, field: string): void {
  const fail = (index: number, text: string, reason: string): never => {
    const before = xml.slice(0, index).split('\n');
    const where = `line ${before.length}, column ${(before[before.length - 1]?.length ?? 0) + 1}`;
    throw new ValidationError(field, text, `malformed XML at ${where}: ${reason}`, { kind: 'XML' });
  };
  const raw = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/.exec(xml);
  if (raw) fail(raw.index, raw[0], 'control characters are not allowed in XML');
  for (const ref of xml.matchAll(/&(#[0-9]+|#x[0-9a-fA-F]+|[A-Za-z_][\w.-]*);/g)) {
    const body = ref[1] ?? '';
    if (body.startsWith('#')) {
      const code = body.startsWith('#x') ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10);
      if (!isXmlChar(code)) fail(ref.index, ref[0], 'the reference is to a character XML does not allow');
    } else if (!PREDEFINED_ENTITIES.has(body)) {
      fail(ref.index, ref[0], `undefined entity; only ${[...PREDEFINED_ENTITIES].map((e) => `&${e};`).join(' ')} exist`);
    }
  }
}

function firstLine(xml: string, pattern: RegExp): string {
  return (xml.split('\n').find((line) => pattern.test(line)) ?? '').trim();
}

function parseMemoryKiB(reader: DomainReader, domain: XmlNode): number {
  const path = '/domain/memory';
  const text = reader.text(domain, 'memory', '/domain');
  if (text === undefined) reader.fail(path, undefined, 'the domain has no <memory>; libvirt needs one');
  const [memory] = reader.children(domain, 'memory');
  const unit = (memory && reader.attribute(memory, 'unit')) ?? 'KiB';
  const bytesPerUnit = MEMORY_UNITS[unit];
  if (bytesPerUnit === undefined) {
    reader.fail(`${path}/@unit`, unit, `must be one of ${Object.keys(MEMORY_UNITS).join(', ')}`, 'unit');
  }
  const amount = text.trim();
  if (!/^[0-9]+$/.test(amount) || Number(amount) === 0) {
    reader.fail(path, amount, 'must be a positive integer', 'memory size');
  }
  const kib = Math.ceil((Number(amount) * bytesPerUnit) / 1024);
  if (!Number.isSafeInteger(kib)) reader.fail(path, amount, 'is too large', 'memory size');
  return kib;
}

function parseVcpus(reader: DomainReader, domain: XmlNode): number {
  const text = reader.text(domain, 'vcpu', '/domain');
  if (text === undefined) return 1;
  const count = text.trim();
  if (!/^[1-9][0-9]{0,5}$/.test(count)) reader.fail('/domain/vcpu', count, 'must be a positive integer', 'vCPU count');
  return Number(count);
}

function collectBridges(reader: DomainReader, devices: XmlNode[]): string[] {
  const bridges: string[] = [];
  devices.forEach((dev) => {
    reader.children(dev, 'interface').forEach((iface, i) => {
      if (reader.attribute(iface, 'type') !== 'bridge') return;
      const path = `/domain/devices/interface[${i + 1}]/source/@bridge`;
      const [source] = reader.children(iface, 'source');
      const bridge = source && reader.attribute(source, 'bridge');
      if (bridge === undefined) reader.fail(path, undefined, "an interface of type 'bridge' needs <source bridge='…'/>");
      const problem = interfaceNameProblem(bridge);
      if (problem) reader.fail(path, bridge, problem, 'bridge name');
      if (!bridges.includes(bridge)) bridges.push(bridge);
    });
  });
  return bridges;
}

function collectRbd(reader: DomainReader, devices: XmlNode[]): string[] {
  const images: string[] = [];
  devices.forEach((dev) => {
    reader.children(dev, 'disk').forEach((disk, i) => {
      if (reader.attribute(disk, 'type') !== 'network') return;
      const [source] = reader.children(disk, 'source');
      if (!source || reader.attribute(source, 'protocol') !== 'rbd') return;
      const path = `/domain/devices/disk[${i + 1}]/source/@name`;
      const image = reader.attribute(source, 'name');
      if (image === undefined) reader.fail(path, undefined, "an RBD disk needs <source protocol='rbd' name='pool/image'>");
      const problem = rbdImageProblem(image);
      if (problem) reader.fail(path, image, problem, 'RBD image');
      if (!images.includes(image)) images.push(image);
    });
  });
  return images;
}

function collectOtherDisks(reader: DomainReader, devices: XmlNode[]): string[] {
  const out: string[] = [];
  devices.forEach((dev) => {
    reader.children(dev, 'disk').forEach((disk) => {
      const device = reader.attribute(disk, 'device') ?? 'disk';
      if (device !== 'disk' && device !== 'lun') return;
      if (reader.children(disk, 'readonly').length > 0) return;
      const type = reader.attribute(disk, 'type') ?? 'file';
      const [source] = reader.children(disk, 'source');
      if (type === 'network' && source && reader.attribute(source, 'protocol') === 'rbd') return;
      const [target] = reader.children(disk, 'target');
      const where = source ? (reader.attribute(source, 'file') ?? reader.attribute(source, 'dev') ?? reader.attribute(source, 'name') ?? reader.attribute(source, 'volume')) : undefined;
      out.push(`${(target && reader.attribute(target, 'dev')) ?? '?'} (${type}${where ? ` ${where}` : ''})`);
    });
  });
  return out;
}

function findSerialLog(reader: DomainReader, devices: XmlNode[]): string | undefined {
  for (const tag of ['serial', 'console']) {
    for (const dev of devices) {
      for (const [i, port] of reader.children(dev, tag).entries()) {
        const [log] = reader.children(port, 'log');
        if (!log) continue;
        const file = reader.attribute(log, 'file');
        const path = `/domain/devices/${tag}[${i + 1}]/log/@file`;
        if (file === undefined) reader.fail(path, undefined, "<log> needs a file='…' attribute");
        if (!file.startsWith('/') || hasControlChars(file)) {
          reader.fail(path, file, 'must be an absolute path without control characters', 'log file');
        }
        return file;
      }
    }
  }
  return undefined;
}

/**
 * Reads a libvirt domain definition. Throws a ValidationError naming `field`
 * (and an XPath-like location in it) for malformed XML or anything virtkeeper
 * cannot use.
 */
export function parseDomainXml(xml: string, field = 'xml'): DomainInfo {
  if (typeof xml !== 'string') throw new ValidationError(field, xml, 'must be a string', { kind: 'XML' });
  const sizeProblem = domainXmlSizeProblem(Buffer.byteLength(xml, 'utf8'));
  if (sizeProblem) throw new ValidationError(field, undefined, sizeProblem, { kind: 'XML', showValue: false });
  validateWellFormed(xml, field);
  const reader: DomainReader = new DomainReader(field);
  let document: XmlNode;
  try {
    document = parser.parse(xml) as XmlNode;
  } catch (error) {
    const nested = /nested/i.test((error as Error).message);
    const reason = nested ? `elements are nested deeper than ${MAX_DOMAIN_XML_DEPTH} levels` : `cannot be parsed: ${(error as Error).message}`;
    throw new ValidationError(field, undefined, reason, { kind: 'XML', showValue: false });
  }
  const roots = Object.keys(document);
  const domains = document.domain;
  if (roots.length !== 1 || !Array.isArray(domains) || domains.length !== 1) {
    const found = roots.map((r) => `<${r}>`).join(' ');
    reader.fail('', found, 'the document must have a single root element <domain>', 'root element');
  }
  const domain: XmlNode = reader.children(document, 'domain')[0] ?? {};

  const type = reader.attribute(domain, 'type');
  if (type === undefined) reader.fail('/domain/@type', undefined, "<domain> needs a type attribute (kvm, qemu, …)");
  if (!DOMAIN_TYPE.test(type)) {
    reader.fail('/domain/@type', type, 'must be a lower-case word like kvm or qemu', 'domain type');
  }

  const name = reader.text(domain, 'name', '/domain');
  if (name === undefined) reader.fail('/domain/name', undefined, 'the domain has no <name>');
  const nameIssue = nameProblem(name);
  if (nameIssue) reader.fail('/domain/name', name, nameIssue, 'name');

  const rawUuid = reader.text(domain, 'uuid', '/domain');
  let uuid: string | undefined;
  if (rawUuid !== undefined) {
    uuid = rawUuid.trim().toLowerCase();
    if (!UUID.test(uuid)) reader.fail('/domain/uuid', rawUuid, 'must be 8-4-4-4-12 hexadecimal digits', 'UUID');
  }

  const devices = reader.children(domain, 'devices');
  return {
    name,
    uuid,
    memoryKiB: parseMemoryKiB(reader, domain),
    vcpus: parseVcpus(reader, domain),
    bridges: collectBridges(reader, devices),
    rbd: collectRbd(reader, devices),
    otherDisks: collectOtherDisks(reader, devices),
    serialLog: findSerialLog(reader, devices),
    type,
  };
}

/** parseDomainXml, plus the rule that the domain is named after its VM. */
export function parseVmXml(xml: string, vmName: string, field = 'xml'): DomainInfo {
  const info = parseDomainXml(xml, field);
  if (info.name !== vmName) {
    throw new ValidationError(`${field}/domain/name`, info.name, `must equal the VM name ${JSON.stringify(vmName)}`, {
      kind: 'name',
    });
  }
  return info;
}

/**
 * A VM's XML as kept by a watch cache: its text at once, its hash and parsed info on first use.
 * A daemon caches the XML of every VM in the cluster but parses only those it acts on.
 */
export class VmXml {
  private digest: string | undefined;
  private parsed: { info: DomainInfo } | { error: string } | undefined;

  constructor(
    readonly text: string,
    private readonly vmName: string,
  ) {}

  get hash(): string {
    return (this.digest ??= xmlHash(this.text));
  }

  /** The parsed domain; undefined when the XML is unreadable (see `error`). */
  get info(): DomainInfo | undefined {
    const parsed = this.parse();
    return 'info' in parsed ? parsed.info : undefined;
  }

  /** Why the XML is unreadable, or undefined when it is fine. */
  get error(): string | undefined {
    const parsed = this.parse();
    return 'error' in parsed ? parsed.error : undefined;
  }

  private parse(): { info: DomainInfo } | { error: string } {
    if (!this.parsed) {
      try {
        this.parsed = { info: parseVmXml(this.text, this.vmName) };
      } catch (error) {
        this.parsed = { error: (error as Error).message };
      }
    }
    return this.parsed;
  }
}
