#!/usr/bin/env bash
# Installs the system libraries the build needs (OpenBLAS with LAPACK, for ndarray-linalg) when missing.
# Debian/Ubuntu: apt-get install libopenblas-dev (as root, or with sudo). macOS: Homebrew's openblas.
set -euo pipefail

have_openblas() {
  if command -v dpkg >/dev/null 2>&1; then
    dpkg -s libopenblas-dev >/dev/null 2>&1 && return 0
  fi
  # any distribution: a linkable libopenblas.so known to the loader's cache or pkg-config
  if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists openblas 2>/dev/null; then return 0; fi
  for d in /usr/lib /usr/lib64 /usr/local/lib /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu; do
    [ -e "$d/libopenblas.so" ] && return 0
  done
  return 1
}

case "$(uname -s)" in
  Darwin)
    if brew --prefix openblas >/dev/null 2>&1; then
      echo "deps: Homebrew openblas found at $(brew --prefix openblas)"
    else
      echo "deps: OpenBLAS is missing. Install it with: brew install openblas libomp" >&2
      exit 1
    fi
    ;;
  Linux)
    if have_openblas; then
      echo "deps: system OpenBLAS (libopenblas-dev) present"
      exit 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
      echo "deps: OpenBLAS (with LAPACK) is missing and this is not a Debian/Ubuntu system;" \
           "install your distribution's OpenBLAS development package (e.g. openblas-devel) and rerun" >&2
      exit 1
    fi
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
      if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "deps: libopenblas-dev is missing; run as root: apt-get install -y libopenblas-dev" >&2
        exit 1
      fi
    fi
    echo "deps: installing libopenblas-dev (system OpenBLAS + LAPACK for ndarray-linalg) with apt-get ${SUDO:+via sudo}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libopenblas-dev pkg-config >/dev/null
    echo "deps: libopenblas-dev installed"
    ;;
  *)
    echo "deps: unsupported system $(uname -s); install OpenBLAS with LAPACK by hand" >&2
    exit 1
    ;;
esac
