import { CommanderError } from 'commander';
import { currentConnectString } from './connect.ts';
import { EXIT_USAGE, reportError } from './errors.ts';
import { buildProgram } from './program.ts';

// `vk get vms | head`: a closed stdout ends the command quietly.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
  throw error;
});

try {
  await buildProgram().parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    const finishedFine = ['commander.helpDisplayed', 'commander.version', 'commander.help'].includes(error.code);
    process.exitCode = finishedFine ? 0 : EXIT_USAGE;
  } else {
    process.exitCode = reportError(error, currentConnectString);
  }
}
