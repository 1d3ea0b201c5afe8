import { Command } from 'commander';

const program = new Command('vk')
  .description('virtkeeper: declarative control of a cluster of libvirt hypervisors through ZooKeeper')
  .version('0.1.0');

await program.parseAsync(process.argv);
