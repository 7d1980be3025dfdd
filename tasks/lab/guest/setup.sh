#!/bin/sh
# mmdebstrap setup hook (before any package is installed): $1 = the root filesystem being built.
# A small initramfs with only what finds and mounts the root disk: ~6 MB instead of ~40 MB, which
# matters when the kernel decompresses it under software emulation.
set -eu
R=$1
mkdir -p "$R/etc/initramfs-tools/conf.d"
printf 'MODULES=list\nCOMPRESS=zstd\n' > "$R/etc/initramfs-tools/conf.d/lab.conf"
printf 'virtio_pci\nvirtio_blk\next4\n' > "$R/etc/initramfs-tools/modules"

# The VM's SSH identity comes appended to its own initrd (tasks/lab/seed.py): kept in /run, which the
# initramfs hands over to the real root, for lab-seed.service. klibc's tools here have no cp.
mkdir -p "$R/etc/initramfs-tools/scripts/init-bottom"
cat > "$R/etc/initramfs-tools/scripts/init-bottom/lab-seed" <<'EOS'
#!/bin/sh
case $1 in prereqs) exit 0;; esac
[ -d /lab-seed ] || exit 0
umask 077
mkdir -p /run/lab-seed
for f in /lab-seed/*; do cat "$f" > "/run/lab-seed/${f##*/}"; done
EOS
chmod 755 "$R/etc/initramfs-tools/scripts/init-bottom/lab-seed"
