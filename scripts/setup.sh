#!/usr/bin/env bash
# Setup on a fresh Debian 12 machine (as root): the system packages the tools and tests use, then the npm
# dependencies (which include the pinned Node 24 runtime). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

# erofs-utils: mkfs.erofs/fsck.erofs, the reference tools the tests and benchmarks compare with;
# attr/acl: setfattr/setfacl for test trees; util-linux: setpriv; time: GNU time for peak RSS in bench/;
# qemu-system-x86 + busybox-static: the kernel-lab VM (../shared/kernel-lab) where the fscache tests run;
# docker-registry: the CNCF distribution registry the registry-client tests start; apache2-utils: htpasswd (bcrypt);
# systemd: systemd-analyze verifies contrib/eod-daemon.service; debootstrap: the Debian corpus (bench/corpus.ts) of
# test/containerd/python3.test.ts and the benchmarks; tar, zstd, lz4: layer archives and reference
# blocks in tests; e2fsprogs: mkfs.ext4 for small cache file systems; containerd + runc: the containerd the
# snapshotter tests start by hand (test/helpers/containerd.ts; ctr comes with containerd). (With CI=true a test
# that finds one missing fails instead of skipping: test/helpers/skip.ts.)
pkgs=(erofs-utils attr acl util-linux time qemu-system-x86 busybox-static docker-registry apache2-utils systemd
  tar zstd lz4 e2fsprogs debootstrap containerd runc)
command -v npm >/dev/null || pkgs+=(nodejs npm)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> apt-get install ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# npm ci also leaves every package tarball in npm's cache: test/cli/install.test.ts installs the packed eod
# from there, offline.
echo "==> npm ci"
npm ci --no-audit --no-fund --loglevel=error
