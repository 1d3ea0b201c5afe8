// `vk api`: serve the REST API (api/) on --listen until SIGINT/SIGTERM; `vk api token`: make a new
// bearer token. The server is imported inside the action, so other vk commands do not load Fastify.
//
// Invariant: without --token-file the server listens on a loopback address only, unless --insecure.
import { isIP } from 'node:net';
import { Option, type Command } from 'commander';
import { newToken, readTokenFile, SCOPES, type Scope, type TokenSet } from '../../api/auth.ts';
import { ValidationError } from '../../schemas/index.ts';
import { withCluster } from '../connect.ts';
import { usageError } from '../errors.ts';
import { println } from '../output.ts';

interface ApiFlags {
  listen: string;
  tokenFile?: string;
  insecure?: boolean;
  logLevel?: string;
}

/** ADDR:PORT ([v6]:PORT for IPv6); a bad one is a usage error naming --listen. */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):([0-9]{1,5})$/.exec(text);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!m || host === undefined || !(port >= 0 && port <= 65535) || (m[1] !== undefined && isIP(m[1]) !== 6)) {
    throw usageError(`--listen: invalid value ${JSON.stringify(text)}: must be ADDR:PORT, e.g. 127.0.0.1:8086 or [::1]:8086`);
  }
  return { host, port };
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

export function registerApi(program: Command): void {
  const api = program
    .command('api')
    .description('serve the REST API (routes, tokens and errors: README "API"; OpenAPI at /openapi.json)')
    .option('--listen <addr:port>', 'address and port to listen on', '127.0.0.1:8086')
    .option('--token-file <file>', 'bearer tokens, one a line: sha256hex scope name (vk api token makes one)')
    .option('--insecure', 'allow listening on a non-loopback address without tokens')
    .addOption(new Option('--log-level <level>', 'request log level').choices(['debug', 'info', 'warn', 'error']).default('info'))
    .action(async (flags: ApiFlags, cmd: Command) => {
      const { host, port } = parseListen(flags.listen);
      let tokens: TokenSet | null = null;
      if (flags.tokenFile !== undefined) {
        try {
          tokens = readTokenFile(flags.tokenFile);
        } catch (error) {
          if (error instanceof ValidationError) throw usageError(`--token-file: ${error.message}`);
          throw usageError(`--token-file: cannot read ${flags.tokenFile}: ${(error as Error).message}`);
        }
        if (tokens.size === 0) throw usageError(`--token-file: ${flags.tokenFile} holds no token; make one with vk api token`);
      } else if (!isLoopback(host) && !flags.insecure) {
        throw usageError(`--listen: ${host} is not a loopback address and no --token-file was given: anyone who reaches it could change the cluster; give --token-file, or --insecure to do it anyway`);
      }
      const { buildApi } = await import('../../api/server.ts');
      await withCluster(cmd, async (cluster) => {
        const app = await buildApi({
          store: cluster.store,
          paths: cluster.paths,
          auth: tokens,
          connectString: cluster.connectString,
          ...(cluster.auth && { zkAuth: cluster.auth }),
          log: { level: flags.logLevel ?? 'info' },
        });
        const address = await app.listen({ host, port });
        process.stderr.write(`vk api: listening on ${address}${tokens ? ` (${tokens.size} token${tokens.size === 1 ? '' : 's'})` : ' (no auth)'}\n`);
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        await app.close();
      });
    });

  api
    .command('reference')
    .description('print the API reference page (Markdown, from the OpenAPI document; the repository keeps it as api/README.md)')
    .action(async () => {
      const { openApiDocument, renderReference } = await import('../../api/reference.ts');
      process.stdout.write(renderReference(await openApiDocument()));
    });

  api
    .command('token')
    .description('make a new random bearer token: prints the token (shown only here) and its line for the token file')
    .addOption(new Option('--scope <scope>', 'read (GET only) or admin (everything)').choices(SCOPES).default('read'))
    .requiredOption('--name <name>', 'who or what uses it (shown in the request log)')
    .action((flags: { scope: Scope; name: string }) => {
      const made = newToken(flags.scope, flags.name);
      println(`token: ${made.token}`);
      println(`line:  ${made.line}`);
    });
}
