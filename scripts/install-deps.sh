#!/usr/bin/env bash
# Installs the Debian 12 packages plm.cpp needs to build and test.
# Idempotent and fast when everything is present: apt is only called for missing packages.
set -euo pipefail

PACKAGES=(
  # toolchain
  cmake ninja-build g++ clang clang-format libclang-rt-14-dev pkg-config make
  # testing and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # core: JSON, threads/GEMM
  nlohmann-json3-dev libopenblas-dev libdnnl-dev
  # text: Unicode regex for the pre-tokenizer
  libpcre2-dev
  # images: JPEG, PNG, WebP, GIF decoders and EXIF orientation
  libjpeg62-turbo-dev libpng-dev libwebp-dev libgif-dev libexif-dev
  # video
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev
  # front ends
  libcli11-dev libcpp-httplib-dev libcurl4-openssl-dev libfmt-dev
  # server: cpp-httplib is built with TLS, zlib and brotli support
  libssl-dev zlib1g-dev libbrotli-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
