// The REST API's bearer tokens kept in ZooKeeper (/api/tokens): the token file's format, one
// `sha256hex scope name` a line, hashes only. `vk api token --store` adds one, `vk api revoke`
// removes one; every `vk api --zk-tokens` follows the znode, so a change reaches them at once.
//
// Invariants: every write is a compare-and-set of the znode (one CAS helper); a name is unique
// (adding a name that exists is refused: revoke it first); the text written always parses.
import { CasConflictError, compareAndSet, NO_CHANGE } from '../drivers/zk/index.ts';
import type { Cluster } from '../cli/connect.ts';
import { parseTokenFile, type TokenEntry } from '../api/auth.ts';
import { ContentionError, NotFoundError, RefusedError } from './errors.ts';

function linesOf(text: string): string[] {
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
}

function nameOf(line: string): string {
  return line.split(/\s+/)[2] ?? '';
}

async function editTokens(cluster: Cluster, edit: (lines: string[]) => string[] | typeof NO_CHANGE): Promise<void> {
  const path = cluster.paths.apiTokens;
  try {
    await compareAndSet(cluster.store, path, {
      what: path,
      decode: (data) => {
        const text = data.toString('utf8');
        parseTokenFile(text, path); // refuses to edit a znode that does not parse
        return linesOf(text);
      },
      absent: () => [],
      encode: (lines) => lines.map((l) => `${l}\n`).join(''),
      edit,
    });
  } catch (error) {
    if (error instanceof CasConflictError) throw new ContentionError(`${path} kept changing while being written; gave up after ${error.attempts} attempts`);
    throw error;
  }
}

/** Adds a token's line (from newToken); refused when a token of that name is stored already. */
export async function storeApiToken(cluster: Cluster, line: string): Promise<void> {
  parseTokenFile(line, 'the new token');
  await cluster.store.ensurePath(cluster.paths.apiTokens.slice(0, cluster.paths.apiTokens.lastIndexOf('/')));
  await editTokens(cluster, (lines) => {
    if (lines.some((l) => nameOf(l) === nameOf(line))) throw new RefusedError(`a token named ${nameOf(line)} is stored already; revoke it first (vk api revoke ${nameOf(line)})`);
    return [...lines, line];
  });
}

/** Removes the stored token of that name: every server that follows the znode refuses it at once. */
export async function revokeApiToken(cluster: Cluster, name: string): Promise<void> {
  let found = false;
  await editTokens(cluster, (lines) => {
    const kept = lines.filter((l) => nameOf(l) !== name);
    found = kept.length < lines.length;
    return found ? kept : NO_CHANGE;
  });
  if (!found) throw new NotFoundError(`no token named ${name} is stored in ${cluster.paths.apiTokens}`);
}

/** The stored tokens' names and scopes (never a hash). */
export async function listApiTokens(cluster: Cluster): Promise<TokenEntry[]> {
  const got = await cluster.store.get(cluster.paths.apiTokens);
  if (!got) return [];
  return [...parseTokenFile(got.data.toString('utf8'), cluster.paths.apiTokens).values()].sort((a, b) => a.name.localeCompare(b.name));
}
