import type { Command } from 'commander';
import { jsonSchemaFor, MANIFEST_KINDS, manifestKindFrom } from '../../schemas/index.ts';

/** `vk schema <kind>`: prints the JSON Schema of a manifest kind, for editors. */
export function registerSchema(program: Command): void {
  program
    .command('schema')
    .description(`print the JSON Schema of a manifest kind (${MANIFEST_KINDS.join(', ')})`)
    .argument('<kind>', `one of ${MANIFEST_KINDS.map((k) => k.toLowerCase()).join(', ')} (any case)`)
    .action((kindText: string) => {
      const kind = manifestKindFrom(kindText);
      if (kind === undefined) {
        const valid = MANIFEST_KINDS.map((k) => k.toLowerCase()).join(', ');
        process.stderr.write(`vk schema: unknown kind ${JSON.stringify(kindText)}; valid kinds: ${valid}\n`);
        process.exitCode = 2;
        return;
      }
      process.stdout.write(`${JSON.stringify(jsonSchemaFor(kind), null, 2)}\n`);
    });
}
