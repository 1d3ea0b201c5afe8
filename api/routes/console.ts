// GET /vm/{name}/log: the VM's serial console log (core/console.ts, as `vk vm log`); with
// follow=true, the last lines and then each new line as text/plain, until the client goes away.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { map } from 'rxjs';
import { z } from 'zod';
import type { Cluster } from '../../cli/connect.ts';
import { readExistingVm } from '../../cli/cluster.ts';
import { DEFAULT_CONSOLE_LINES, followConsole, readConsole } from '../../core/console.ts';
import { errorResponses, VmNameParams } from '../schemas.ts';
import type { StreamRegistry } from '../stream.ts';

const LogQuery = z.strictObject({
  lines: z.coerce.number().int().min(1).max(100_000).optional().describe(`the last N lines (default ${DEFAULT_CONSOLE_LINES})`),
  follow: z.enum(['true', 'false']).optional().describe('true: those lines, then every new line as the node writes it, as text/plain'),
});

const ConsoleLog = z
  .object({
    name: z.string(),
    present: z.boolean().describe("false: the node has written no log yet (the XML needs <serial><log file='…'/></serial>)"),
    lines: z.array(z.string()),
  })
  .meta({ id: 'ConsoleLog' });

export function consoleRoutes(app: FastifyInstance, cluster: Cluster, stream: StreamRegistry): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const { store, paths } = cluster;
  api.get(
    '/vm/:name/log',
    {
      schema: {
        tags: ['vm'],
        summary: "the VM's serial console log, as vk vm log; follow=true streams new lines (text/plain)",
        params: VmNameParams,
        querystring: LogQuery,
        response: { 200: ConsoleLog, ...errorResponses(400, 401, 404, 409, 503) },
      },
    },
    async (req, reply) => {
      const { name } = req.params;
      const count = req.query.lines ?? DEFAULT_CONSOLE_LINES;
      if (req.query.follow !== 'true') {
        const lines = await readConsole(store, paths, name, count);
        return { name, present: lines !== null, lines: lines ?? [] };
      }
      await readExistingVm(store, paths, name); // 404 before the stream starts
      return stream(req, reply, 'text/plain; charset=utf-8', followConsole(store, paths, name, count).pipe(map((fresh) => fresh.map((l) => `${l}\n`).join(''))));
    },
  );
}
