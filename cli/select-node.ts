// Choosing a target node for a VM (seed 004), as a pure function of what the nodes report.
//
//   mem      most free memory, counting provisioned memory (every VM assigned to the node,
//            running or not): highest totalMiB - provisionedMiB
//   memprov  least provisioned share: lowest provisionedMiB / totalMiB
//   load     lowest load average
//   vcpus    fewest allocated vCPUs
//   vms      fewest running VMs
//   default  the cluster config's defaultNodeSelector
//
// Candidates: nodes whose daemon is alive, whose status says domainState ready (and whose spec
// does not ask for a flush), within the VM's nodeLimit (when it has one), other than the node the
// VM is on. Ties go to the node whose name sorts first.
// The functions live in reconcilers/selectors.ts (pure), shared with the node flush and `vk plan`.
export {
  compareFigures,
  exclusionReason,
  figuresOf,
  place,
  resolveSelector,
  selectNode,
  type NodeCandidate,
  type NodeFigures,
  type Placed,
  type SelectInput,
  type Selection,
} from '../reconcilers/selectors.ts';
