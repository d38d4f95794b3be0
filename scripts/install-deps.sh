#!/usr/bin/env bash
# Installs every Debian 12 package Kiln needs to build, test and run. Idempotent: packages
# already present are skipped by apt-get, and nothing is installed when all are present.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  llvm-19-dev clang-19 libclang-rt-19-dev
  libprotobuf-dev protobuf-compiler
  libeigen3-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  zlib1g-dev libzstd-dev
  dataset-fashion-mnist
  g++-aarch64-linux-gnu qemu-user
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
