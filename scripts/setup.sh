#!/usr/bin/env bash
# Installs what warmvm needs on Debian 12 and builds it. Safe to run again: each step checks first.
#   - QEMU >= 9.0 (qemu-system-x86 + qemu-utils from bookworm-backports; Debian 12's own is 7.2)
#   - Debian packages the guest builds use (debootstrap for the Debian profile)
#   - npm packages (npm ci) and the TypeScript build (dist/)
#   - with --tests: what only the tests need (Debian's chromium, driven by playwright-core;
#     isoinfo from genisoimage, which checks warmvm's own ISO writer: warmvm never runs it;
#     syslinux, mtools, dosfstools and sfdisk, which make the user-image test's BIOS-bootable disk;
#     strace, which makes a QEMU slow to answer so that a test can interrupt a capture midway;
#     docker-registry and htpasswd, a real OCI registry with and without auth for push and pull;
#     opentelemetry-proto from bookworm-backports, the official .proto files the OTLP test decodes with)
set -euo pipefail
cd "$(dirname "$0")/.."

TESTS=0
for arg in "$@"; do
  case $arg in
    --tests) TESTS=1 ;;
    -h | --help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) printf 'setup: error: unknown option %s (known: --tests)\n' "$arg" >&2; exit 2 ;;
  esac
done

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || die "run as root, or install sudo"
  SUDO="sudo"
fi

command -v apt-get >/dev/null || die "apt-get not found: this script is for Debian 12 (bookworm)"

node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
[ "$node_major" -ge 20 ] || die "Node.js 20 or newer is needed (found: $(node --version 2>/dev/null || echo none)); install it from nodejs.org or NodeSource"

qemu_ok() {
  local v
  v="$(qemu-system-x86_64 --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')" || return 1
  [ -n "$v" ] || return 1
  set -- $v
  [ "$1" -gt 9 ] || { [ "$1" -eq 9 ] && [ "$2" -ge 0 ]; }
}

BACKPORTS=/etc/apt/sources.list.d/warmvm-backports.list
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  say "adding bookworm-backports to apt's sources ($BACKPORTS)"
  echo 'deb http://deb.debian.org/debian bookworm-backports main' | $SUDO tee "$BACKPORTS" >/dev/null
fi

# The demo guest is assembled with `apt-get download`, so the package lists must be fresh.
say "apt-get update"
$SUDO apt-get update -q >/dev/null

PACKAGES=(ca-certificates procps iproute2 zstd xz-utils curl debootstrap e2fsprogs)
# The inspector's browser test (Debian's browser, never a download of playwright's own), and
# isoinfo, an independent reader for the ISO writer's tests.
[ "$TESTS" -eq 1 ] && PACKAGES+=(chromium genisoimage syslinux syslinux-common mtools dosfstools fdisk strace docker-registry apache2-utils)
missing=()
for p in "${PACKAGES[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi

if ! qemu_ok || ! command -v qemu-img >/dev/null; then
  say "installing QEMU from bookworm-backports (about 20 s)"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -t bookworm-backports qemu-system-x86 qemu-utils >/dev/null
fi
# The OTLP receiver test decodes what `start` sends with the official .proto files
# (/usr/include/opentelemetry/proto/), which Debian 12 has only in its backports.
if [ "$TESTS" -eq 1 ] && ! dpkg-query -W -f='${Status}' opentelemetry-proto 2>/dev/null | grep -q 'install ok installed'; then
  say "installing opentelemetry-proto from bookworm-backports"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -t bookworm-backports opentelemetry-proto >/dev/null
fi
qemu_ok || die "QEMU >= 9.0 is still missing after the install: $(qemu-system-x86_64 --version 2>&1 | head -1)"
say "$(qemu-system-x86_64 --version | head -1)"

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
else
  say "npm packages up to date; building"
  npm run --silent build
fi
say "ready: node dist/bin/warmvm.js --help"
