// The pure parsers of what Ceph 16.2 prints with --format json (shapes seen on 16.2.15):
//
// `rbd lock ls --format json POOL/IMAGE` (no trailing newline; `[]` without locks):
//   [{"id":"mylock","locker":"client.4119","address":"127.0.0.1:0/2835833973"}]
//   (Luminous and older printed an object keyed by the lock id: {"ID":{"locker","address"}};
//   accepted too.)
// `rbd status --format json POOL/IMAGE`:
//   {"watchers":[{"address":"127.0.0.1:0/2378637426","client":4181,"cookie":93946468515696}]}
// `ceph osd blocklist ls --format json`: a newline, then TWO JSON arrays back to back, the host
//   and instance entries, then the CIDR ranges (`osd blocklist range add`, new in 16.2.11):
//   \n[{"addr":"198.51.100.7:0/0","until":"2026-12-04T21:18:44.428022+0000"}][{"range":"203.0.113.0:0/24","until":"…"}]
//   Only the first kind is an entry here (virtkeeper never adds a range; a range cannot be
//   removed with `osd blocklist rm`). `until` is Ceph's UTC time with microseconds and "+0000";
//   it is returned as an ISO string (toISOString) when it parses, as printed otherwise.
//
// Anything else — not JSON, a lock or watcher without its fields — throws ParseError: a lock the
// parser cannot read must not turn into "no lock".
import type { BlocklistEntry, RbdLocker, RbdWatcher } from './types.ts';

export class ParseError extends Error {
  override name = 'ParseError';
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new ParseError(`${what}: not JSON: ${JSON.stringify(text.slice(0, 200))}`);
  }
}

/** Top-level JSON values written back to back (`[…][…]`), whitespace between them allowed. */
export function jsonValues(text: string, what: string): unknown[] {
  const values: unknown[] = [];
  let depth = 0;
  let inString = false;
  let start = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (depth === 0 && /\s/.test(c)) continue;
    if (depth === 0) {
      if (c !== '[' && c !== '{') throw new ParseError(`${what}: expected an array or object at offset ${i}: ${JSON.stringify(text.slice(0, 200))}`);
      start = i;
    }
    if (c === '"') inString = true;
    else if (c === '[' || c === '{') depth++;
    else if (c === ']' || c === '}') {
      depth--;
      if (depth === 0) values.push(parseJson(text.slice(start, i + 1), what));
    }
  }
  if (depth !== 0 || inString) throw new ParseError(`${what}: truncated JSON: ${JSON.stringify(text.slice(0, 200))}`);
  return values;
}

function str(o: Json, key: string, what: string): string {
  const v = o[key];
  if (typeof v !== 'string' || v === '') throw new ParseError(`${what}: "${key}" is not a non-empty string in ${JSON.stringify(o)}`);
  return v;
}

/** A number or a string of digits ("client.4181" gives 4181). */
function int(o: Json, key: string, what: string): number {
  const v = o[key];
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string') {
    const m = /^(?:client\.)?(\d+)$/.exec(v);
    if (m) return Number(m[1]);
  }
  throw new ParseError(`${what}: "${key}" is not a number in ${JSON.stringify(o)}`);
}

export function parseLocks(stdout: string): RbdLocker[] {
  const what = 'rbd lock ls';
  if (stdout.trim() === '') return [];
  const v = parseJson(stdout, what);
  if (Array.isArray(v)) {
    return v.map((e) => {
      if (!isObj(e)) throw new ParseError(`${what}: a lock is not an object: ${JSON.stringify(e)}`);
      return { id: str(e, 'id', what), locker: str(e, 'locker', what), address: str(e, 'address', what) };
    });
  }
  if (isObj(v)) {
    return Object.entries(v).map(([id, e]) => {
      if (!isObj(e)) throw new ParseError(`${what}: lock ${JSON.stringify(id)} is not an object: ${JSON.stringify(e)}`);
      return { id, locker: str(e, 'locker', what), address: str(e, 'address', what) };
    });
  }
  throw new ParseError(`${what}: neither an array nor an object: ${JSON.stringify(stdout.slice(0, 200))}`);
}

export function parseWatchers(stdout: string): RbdWatcher[] {
  const what = 'rbd status';
  const v = parseJson(stdout, what);
  if (!isObj(v)) throw new ParseError(`${what}: not an object: ${JSON.stringify(stdout.slice(0, 200))}`);
  const w = v['watchers'];
  if (w === undefined) return [];
  const list = Array.isArray(w) ? w : isObj(w) ? Object.values(w) : undefined;
  if (list === undefined) throw new ParseError(`${what}: "watchers" is neither an array nor an object: ${JSON.stringify(w)}`);
  return list.map((e) => {
    if (!isObj(e)) throw new ParseError(`${what}: a watcher is not an object: ${JSON.stringify(e)}`);
    return { address: str(e, 'address', what), client: int(e, 'client', what), cookie: int(e, 'cookie', what) };
  });
}

/** Ceph's "2026-12-04T21:18:44.428022+0000" as an ISO string; the text itself when it does not parse. */
export function cephTime(text: string): string {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?([+-]\d\d):?(\d\d)$/.exec(text.trim());
  if (!m) return text;
  const d = new Date(`${m[1]}.${(m[2] ?? '0').slice(0, 3).padEnd(3, '0')}${m[3]}:${m[4]}`);
  return Number.isNaN(d.getTime()) ? text : d.toISOString();
}

export function parseBlocklist(stdout: string): BlocklistEntry[] {
  const what = 'ceph osd blocklist ls';
  const entries: BlocklistEntry[] = [];
  for (const v of jsonValues(stdout, what)) {
    if (!Array.isArray(v)) throw new ParseError(`${what}: not an array: ${JSON.stringify(v)}`);
    for (const e of v) {
      if (!isObj(e)) throw new ParseError(`${what}: an entry is not an object: ${JSON.stringify(e)}`);
      if (e['range'] !== undefined && e['addr'] === undefined) continue; // a CIDR range: see the header
      entries.push({ address: str(e, 'addr', what), until: cephTime(str(e, 'until', what)) });
    }
  }
  return entries;
}
