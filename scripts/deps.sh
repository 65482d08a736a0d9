#!/usr/bin/env bash
# Installs the Debian packages mnemo builds and tests with; skips what is present.
# Idempotent: a second run with everything installed touches nothing.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config clang nodejs
  libuv1-dev librocksdb-dev libflatbuffers-dev flatbuffers-compiler
  libhttp-parser-dev libcjson-dev libstemmer-dev libssl-dev libcmocka-dev
  python3 python3-pytest python3-numpy
  python3-hnswlib python3-faiss
  libgrpc-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler python3-grpcio python3-yaml python3-jsonschema wrk
  nftables iptables
)
missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#PKGS[@]} packages present"
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
