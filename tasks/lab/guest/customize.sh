#!/bin/sh
# mmdebstrap customize hook for the lab's guest image: $1 = the root filesystem being built.
# Nothing per-VM goes into the image: hostname and address come from the kernel command line
# (systemd.hostname=, lab.ip=), SSH host key and authorized key from the VM's own initrd (kept in
# /run/lab-seed by the init-bottom script of setup.sh) that lab-seed.service installs before sshd starts.
set -eu
R=$1

echo lab > "$R/etc/hostname"
printf '/dev/vda / ext4 defaults,noatime 0 1\n' > "$R/etc/fstab"
chroot "$R" passwd --lock root >/dev/null

# --- per-VM network from the kernel command line: lab.ip=ADDR/PREFIX ---------------------------
cat > "$R/usr/local/sbin/lab-net" <<'EOS'
#!/bin/sh
mkdir -p /run/systemd/network
for w in $(cat /proc/cmdline); do case $w in lab.ip=*) ADDR=${w#lab.ip=};; esac; done
[ -n "${ADDR:-}" ] || exit 0
printf '[Match]\nName=eth0\n[Network]\nAddress=%s\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' "$ADDR" \
  > /run/systemd/network/10-eth0.network
EOS
chmod 755 "$R/usr/local/sbin/lab-net"
cat > "$R/etc/systemd/system/lab-net.service" <<'EOS'
[Unit]
Description=Lab network address from the kernel command line
DefaultDependencies=no
Before=systemd-networkd.service network-pre.target
Wants=network-pre.target
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/lab-net
[Install]
WantedBy=sysinit.target
EOS

# --- per-VM SSH identity from the VM's initrd --------------------------------------------------
cat > "$R/usr/local/sbin/lab-seed" <<'EOS'
#!/bin/sh
# Install this VM's own SSH host key and the lab's client key, which its initrd carried to /run.
set -eu
seed=/run/lab-seed
[ -e "$seed/authorized_keys" ] || { echo "lab-seed: no identity in the initrd: this VM has no SSH keys"; exit 1; }
install -m 600 "$seed/ssh_host_ed25519_key" /etc/ssh/ssh_host_ed25519_key
install -m 644 "$seed/ssh_host_ed25519_key.pub" /etc/ssh/ssh_host_ed25519_key.pub
install -d -m 700 /root/.ssh
install -m 600 "$seed/authorized_keys" /root/.ssh/authorized_keys
rm -rf "$seed"
EOS
chmod 755 "$R/usr/local/sbin/lab-seed"
cat > "$R/etc/systemd/system/lab-seed.service" <<'EOS'
[Unit]
Description=Lab SSH identity from the VM's initrd
After=local-fs.target
Before=ssh.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/lab-seed
[Install]
WantedBy=multi-user.target
EOS

# The image carries no host keys: every VM gets its own from its seed.
rm -f "$R"/etc/ssh/ssh_host_*
cat > "$R/etc/ssh/sshd_config.d/lab.conf" <<'EOS'
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
# Borg runs its 33 self tests (a second of CPU under TCG) at every start, on the client and again in
# borg serve; borg's docs allow switching them off after a one-time run, which test_lab does per lab.
SetEnv BORG_SELFTEST=disabled
EOS
# OpenSSH 9.2's default key exchange, sntrup761x25519, costs 1.5 to 2 s a connection under TCG (measured
# from nodea to the backup VM: 5.4-6.0 s vs 4.0 s); borg opens one per command. X25519 alone here.
printf 'KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org\n' > "$R/etc/ssh/ssh_config.d/lab.conf"

chroot "$R" systemctl enable lab-net.service lab-seed.service systemd-networkd.service serial-getty@ttyS0.service
# Nothing at boot that the flows should decide: DRBD, the o2cb cluster stack and the Pacemaker stack are
# started by the flows (o2cb fails until cluster.conf exists; corosync would start a one-node cluster
# from the package's sample corosync.conf, its memory mlocked). Timers only cost CPU under emulation.
rm -f "$R/etc/corosync/corosync.conf"
for unit in drbd.service o2cb.service ocfs2.service corosync.service pacemaker.service sbd.service; do
  [ -e "$R/lib/systemd/system/$unit" ] && chroot "$R" systemctl disable "$unit" >/dev/null 2>&1 || true
done
chroot "$R" systemctl mask systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
  e2scrub_all.timer e2scrub_reap.service fstrim.timer systemd-firstboot.service man-db.timer >/dev/null 2>&1 || true

: > "$R/etc/machine-id"          # regenerated per VM at first boot
chroot "$R" apt-get clean
rm -rf "$R"/var/lib/apt/lists/*
