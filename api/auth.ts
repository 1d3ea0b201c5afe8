// Bearer tokens. The token file holds one token a line, `sha256hex scope name` (# comments and
// blank lines ignored): only the SHA-256 of each token is stored, never the token. Scopes: `read`
// (GET) and `admin` (everything). `vk api token` makes a new random token and its line.
//
// Invariants: a request's token is hashed and looked up, never kept, logged or echoed; every route
// but /openapi.json needs a token when tokens are configured (401 without one or with an unknown
// one, 403 for a read token on a write).
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ValidationError } from '../schemas/index.ts';

export const SCOPES = ['read', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export interface TokenEntry {
  scope: Scope;
  name: string;
}

/** Hashes of tokens → who they are. */
export type TokenSet = ReadonlyMap<string, TokenEntry>;

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A new token (shown once) and its line for the token file. */
export function newToken(scope: Scope, name: string): { token: string; line: string } {
  if (!/^[A-Za-z0-9._@-]{1,64}$/.test(name)) throw new ValidationError('name', name, 'must be 1-64 letters, digits or ._@-', { kind: 'token name' });
  const token = `vk_${randomBytes(32).toString('base64url')}`;
  return { token, line: `${hashToken(token)} ${scope} ${name}` };
}

export function parseTokenFile(text: string, file: string): TokenSet {
  const tokens = new Map<string, TokenEntry>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const where = `${file}:${i + 1}`;
    const [hash, scope, name, ...rest] = line.split(/\s+/);
    if (!hash || !/^[0-9a-f]{64}$/.test(hash)) throw new ValidationError(`${where}`, undefined, 'must start with the SHA-256 of a token (64 lower-case hex digits)', { showValue: false });
    if (!SCOPES.includes(scope as Scope)) throw new ValidationError(`${where}`, scope, `the scope must be ${SCOPES.join(' or ')}`, { kind: 'scope' });
    if (!name || rest.length > 0) throw new ValidationError(`${where}`, undefined, 'must be `sha256hex scope name`', { showValue: false });
    tokens.set(hash, { scope: scope as Scope, name });
  });
  return tokens;
}

export function readTokenFile(file: string): TokenSet {
  return parseTokenFile(readFileSync(file, 'utf8'), file);
}

/** The token of an `Authorization: Bearer …` header, or undefined. */
export function bearerOf(header: string | undefined): string | undefined {
  const m = header === undefined ? null : /^Bearer +([^\s]+) *$/i.exec(header);
  return m ? m[1] : undefined;
}
