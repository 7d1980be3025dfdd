#!/usr/bin/env bash
# Install the Debian packages the lab and the tests need on the host, idempotently (Debian 12, root).
# Package postinst scripts must not start daemons here: libvirtd in the host namespace would bring up
# libvirt's NAT "default" network on the host. A temporary policy-rc.d forbids every service start.
set -euo pipefail

packages=(
  # guest image build
  mmdebstrap e2fsprogs zstd
  # VMs: qemu (TCG or KVM), disk images, BIOS/option ROMs
  qemu-system-x86 qemu-utils seabios ipxe-qemu
  # libvirt daemon, run privately inside the lab's network namespace
  libvirt-daemon-system libvirt-clients dnsmasq-base iptables
  # libvirt XML schema validation in the unit tests (virt-xml-validate uses xmllint)
  libxml2-utils
  # libvirt-python build
  pkg-config libvirt-dev gcc
  # the real drbdadm parser validates rendered DRBD configs in the unit tests
  drbd-utils kmod
  # the filesystems the volume may carry, made for real in the unit tests
  xfsprogs
  # real borg for the backup tests on local repositories
  borgbackup
  # the real nft checks the link-cut drill's ruleset in the unit tests (check mode: nothing applied)
  nftables
  # host tools the executor drives
  iproute2 openssh-client procps
  # the stacked volume's address announcement, sent for real in a test's own network namespace
  iputils-arping
  # the seeded initrd: each lab VM gets its SSH identity as a cpio appended to the image's initrd
  cpio
  # the team server's compose file is validated in the unit tests (no Docker engine needed)
  docker-compose
  # the UI test screenshots a flow run's page in headless chromium
  chromium
  # the PostgreSQL dump source: pg_dump/pg_restore, and a temporary cluster in the flow tests
  postgresql
  # promtool checks the exporter's output and the alert rules; a flow test scrapes it with a real
  # prometheus of its own (its own port and storage): the package's daemon must never run here
  prometheus
)

# Debian's prometheus enables and starts its unit (but for the policy below): a daemon on :9090 with its
# storage in /var/lib/prometheus is nothing the tests want (they run their own on free ports). When this
# script installed the package, it disables the unit it brought; a prometheus the machine had before is
# its owner's and is left alone.
quiet_new_prometheus() {
  if [ -d /run/systemd/system ] && systemctl is-active --quiet prometheus.service; then
    systemctl stop prometheus.service
  fi
  systemctl disable --quiet prometheus.service 2>/dev/null || true  # without systemd: removes the links
}

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "host packages: all ${#packages[@]} installed"
  exit 0
fi

echo "host packages: installing ${missing[*]}"
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  own_policy=1
fi
cleanup() { if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
if [[ " ${missing[*]} " == *" prometheus "* ]]; then
  quiet_new_prometheus
fi
