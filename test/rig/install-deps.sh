#!/usr/bin/env bash
# Installs the Debian packages the test rig runs for real (ZooKeeper, libvirtd, QEMU, iproute2, ping,
# dnsmasq, arping, busybox (udhcpc, the VM side DHCP client),
# FRR with frr-reload.py: the rig runs its own zebra and bgpd on private dirs and sockets, so an FRR that
# apt may start from /etc/frr, where policy-rc.d allows it, does not get in the way,
# Ceph 16: ceph-mon and ceph-osd for the rig's throwaway monitor + memstore OSD, ceph-common for the
# rbd and ceph CLIs the RBD driver runs (and python3-rbd, which the rig's lock holder uses); their
# systemd units start nothing until a cluster is set up under /etc/ceph and /var/lib/ceph, which the
# rig never touches: its Ceph keeps every file in a temp dir,
# qemu-block-extra: QEMU's block-rbd, for guests whose disks are RBD images,
# openipmi and ipmitool: ipmi_sim, a real IPMI v2 LAN endpoint on loopback that is each simulated node's
# BMC (test/rig/bmc.ts), and the ipmitool CLI the fence driver runs against it),
# openssl: the CLI the REST API tests make their CA, server and client certificates with,
# but only those that are missing, so a provisioned machine pays nothing. Needs root on a fresh machine.
set -euo pipefail
wanted=(zookeeper libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils iproute2 procps iputils-ping frr frr-pythontools dnsmasq-base arping busybox ceph-mon ceph-osd ceph-common qemu-block-extra openipmi ipmitool openssl)
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "test rig: missing Debian packages: ${missing[*]}; run as root: apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 2
fi
echo "test rig: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
