#!/usr/bin/env bash
# Builds the Debian package: bash dist/package.sh  ->  target/debian/fastd-privsep_<version>_<arch>.deb
#
#   --profile NAME   cargo profile to build (default: release)
#   --binary PATH    package this already built binary instead of building one
#   --out DIR        where the .deb goes (default: target/debian)
#
# Contents: /usr/bin/fastd-privsep, /lib/systemd/system/fastd-privsep@.service (next to
# Debian's fastd@.service), the man page fastd-privsep(8), README, changelog and copyright
# under /usr/share/doc/fastd-privsep. No conffiles: the package owns nothing under /etc.
# Needs dpkg-dev (dpkg-shlibdeps), groff-base (man page check) and gzip; dist/deps.sh installs them.
set -euo pipefail
umask 022
cd "$(dirname "$0")/.."
profile=release
binary=
out=target/debian
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "usage: $0 [--profile NAME] [--binary PATH] [--out DIR]" >&2; exit 2 ;;
  esac
done
if [ -z "$binary" ]; then
  cargo build --locked --profile "$profile" --bin fastd-privsep
  binary="target/$profile/fastd-privsep"
fi
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
arch=$(dpkg --print-architecture)

# The man page is kept as roff source; a warning from groff fails the build.
warnings=$(groff -man -ww -z dist/fastd-privsep.8 2>&1)
if [ -n "$warnings" ]; then
  echo "dist/fastd-privsep.8: $warnings" >&2
  exit 1
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/root"
doc="$root/usr/share/doc/fastd-privsep"
install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/usr/share/man/man8" "$doc"
install -m 755 "$binary" "$root/usr/bin/fastd-privsep"
strip --strip-debug "$root/usr/bin/fastd-privsep"
install -m 644 dist/fastd-privsep@.service "$root/lib/systemd/system/"
gzip -9n <dist/fastd-privsep.8 >"$root/usr/share/man/man8/fastd-privsep.8.gz"
install -m 644 README.md dist/debian/copyright "$doc/"
gzip -9n <CHANGELOG.md >"$doc/changelog.gz"
chmod 644 "$root/usr/share/man/man8/fastd-privsep.8.gz" "$doc/changelog.gz"
for s in postinst prerm postrm; do
  install -m 755 "dist/debian/$s" "$root/DEBIAN/$s"
done

# The libraries the binary links (libc6, libgcc-s1) with the versions its symbols need.
mkdir -p "$stage/debian"
printf 'Source: fastd-privsep\n\nPackage: fastd-privsep\nArchitecture: any\n' >"$stage/debian/control"
depends=$(cd "$stage" && dpkg-shlibdeps -O "$root/usr/bin/fastd-privsep" 2>/dev/null |
  sed -n 's/^shlibs:Depends=//p')
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
  -e "s/@DEPENDS@/${depends:-libc6}/" dist/debian/control.in >"$root/DEBIAN/control"
(cd "$root" && find usr lib -type f -exec md5sum {} + | sort -k 2) >"$root/DEBIAN/md5sums"
chmod 644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"

mkdir -p "$out"
deb="$out/fastd-privsep_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
