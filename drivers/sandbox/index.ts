// The local sandbox cluster behind `vk sandbox` (see sandbox.ts).
export { GUEST_GREETING, GUEST_IMAGE, guestImage } from './guest-image.ts';
export { FABRIC_CIDR, netnsExists, netnsUsable, netnsWithPrefix, pidsIn } from '../launch/netns.ts';
export { ensureLibvirtUsers } from '../launch/libvirtd.ts';
export { frrDir, frrProblem, FRR_PACKAGES, frrRunning, nodeFrrLogTail } from './frr.ts';
export { holdTestDriver } from './holder.ts';
export { apiLog, readApiToken } from './api.ts';
export { libvirtUri, qemuProcs, removeTestDomain, virshUri, VK_BIN } from './node.ts';
export { aptLine, installPackages, missingPackages, missingPrograms, SANDBOX_PACKAGES } from './packages.ts';
export { isAlive, tailFile, type ProcRef } from '../launch/process.ts';
export {
  binDir,
  CLUSTER_CONFIG_FILE,
  inspectSandbox,
  markUp,
  MAX_NODES,
  MIN_NODES,
  nodeNames,
  notRestartable,
  restartNodes,
  startSandbox,
  stopSandbox,
  type NodeHealth,
  type RestartReport,
  type SandboxHealth,
  type StartOptions,
  type StopReport,
} from './sandbox.ts';
export { defaultSandboxDir, nodeAddress, prefixFor, preferredPort, readState, REPO_ROOT, statePath, type NodeState, type SandboxDriver, type SandboxState } from './state.ts';
export { fourLetter, zkServing } from './zookeeper.ts';
export { plugVmSide, vmSideNetns, type VmSide } from './vm-side.ts';
