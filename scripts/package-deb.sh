#!/usr/bin/env bash
# Builds imgconv_<version>-1_<arch>.deb: the CLI linked with --static-swift-stdlib (so it runs
# without a Swift toolchain), depending on Debian's runtime packages of the libraries it links
# (computed by dpkg-shlibdeps), with the man page made by swift-argument-parser's
# generate-manual tool, bash/zsh/fish completions from the CLI itself, the copyright file
# (packaging/deb/copyright), a Debian changelog and lintian overrides (packaging/deb/).
#
#   bash scripts/package-deb.sh [OUTPUT_DIR]     (default: the repository root)
#
# Builds in .build/ through scripts/build-release.sh, as scripts/setup.sh does, so after the
# set-up only the man page tool is new. The version is the CLI's own (`imgconv --version`,
# ToolInfo.version in Sources/ImgConvCore/Manifest.swift), Debian revision 1; the architecture is dpkg's. Dates
# (man page, changelog, file times) come from SOURCE_DATE_EPOCH, else the last commit, so the
# same commit gives the same package. The maintainer is DEBFULLNAME <DEBEMAIL>, else the last
# commit's committer. Needs the Swift toolchain, git, dpkg-dev and binutils (strip).
set -euo pipefail
cd "$(dirname "$0")/.."
umask 022

fail() { echo "package-deb: $*" >&2; exit 1; }

out_dir=${1:-.}
mkdir -p "$out_dir" || fail "cannot create the output folder '$out_dir'"
out_dir=$(cd "$out_dir" && pwd)
scratch=.build
work=$scratch/deb
for tool in swift dpkg dpkg-deb dpkg-shlibdeps strip gzip; do
  command -v "$tool" >/dev/null || fail "'$tool' is missing (the Swift toolchain, dpkg-dev and binutils are needed)"
done

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null) \
    || fail "not a git checkout: set SOURCE_DATE_EPOCH to date the package"
fi
export SOURCE_DATE_EPOCH
if [ -n "${DEBFULLNAME:-}" ] && [ -n "${DEBEMAIL:-}" ]; then
  maintainer="$DEBFULLNAME <$DEBEMAIL>"
else
  maintainer=$(git log -1 --format='%cn <%ce>' 2>/dev/null) \
    || fail "not a git checkout: set DEBFULLNAME and DEBEMAIL to name the maintainer"
fi

# 1. The binary, with the Swift standard library and Foundation linked in.
echo "package-deb: scripts/build-release.sh (swift build -c release --static-swift-stdlib)" >&2
bash scripts/build-release.sh >&2 || fail "swift build -c release --static-swift-stdlib failed (its messages are above)"
bin=$scratch/release/imgconv
[ -x "$bin" ] || fail "the build left no $bin"
toolchain_libs=$(ldd "$bin" | grep -E 'libswift|libFoundation|lib_Foundation|libdispatch|libBlocksRuntime' || true)
[ -z "$toolchain_libs" ] || fail "$bin still links the Swift toolchain's libraries: $(echo $toolchain_libs)"

# 2. The man page, by generate-manual, the tool of swift-argument-parser's generate-manual plugin,
# run on the binary being packaged (it reads the CLI's --experimental-dump-help). Not through
# `swift package plugin generate-manual`: the plugin first builds every product in release
# without --static-swift-stdlib (`swift package` has no such option), and a static build
# compiles every module against the toolchain's static modules, so each run would compile the
# whole package twice; the tool itself builds in about 20 seconds, once.
echo "package-deb: man page (generate-manual)" >&2
swift build --product generate-manual --scratch-path "$scratch" \
    2>&1 | { grep -Ev '^\[[0-9]+/[0-9]+\]' || true; } >&2 \
  || fail "swift build --product generate-manual failed (its messages are above)"
generate_manual=$(swift build --product generate-manual --scratch-path "$scratch" --show-bin-path)/generate-manual
[ -x "$generate_manual" ] || fail "the build left no $generate_manual"
manual_dir=$work-manual
rm -rf "$manual_dir"
mkdir -p "$manual_dir"
"$generate_manual" "$bin" --date "$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)" --output-directory "$manual_dir" \
  || fail "generate-manual failed on $bin"
[ -f "$manual_dir/imgconv.1" ] || fail "generate-manual wrote no $manual_dir/imgconv.1"

version=$("$bin" --version) || fail "'$bin --version' failed"
[[ "$version" =~ ^[0-9][0-9A-Za-z.+~]*$ ]] || fail "'$bin --version' printed '$version', not a Debian upstream version"
deb_version=$version-1
arch=$(dpkg --print-architecture)

# 3. The tree of the package.
root=$work/root
rm -rf "$work"
mkdir -p "$root/DEBIAN" "$root/usr/bin" "$root/usr/share/man/man1" "$root/usr/share/doc/imgconv" \
  "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
  "$root/usr/share/fish/vendor_completions.d"
install -m 755 "$bin" "$root/usr/bin/imgconv"
# As dh_strip does: symbols and the compiler's notes go; Swift's reflection metadata is in
# sections of its own and stays.
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/imgconv"

for page in "$manual_dir"/*.1; do
  gzip -9n < "$page" > "$root/usr/share/man/man1/$(basename "$page").gz"
done
# bash-completion sources its files: the generated script's #! line goes.
"$bin" --generate-completion-script bash | sed '1{/^#!/d}' > "$root/usr/share/bash-completion/completions/imgconv"
"$bin" --generate-completion-script zsh > "$root/usr/share/zsh/vendor-completions/_imgconv"
"$bin" --generate-completion-script fish > "$root/usr/share/fish/vendor_completions.d/imgconv.fish"

install -m 644 packaging/deb/copyright "$root/usr/share/doc/imgconv/copyright"
install -D -m 644 packaging/deb/lintian-overrides "$root/usr/share/lintian/overrides/imgconv"
changelog_date=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
cat > "$work/changelog.Debian" <<EOF
imgconv ($deb_version) unstable; urgency=medium

  * imgconv $version, packaged by scripts/package-deb.sh from commit $commit.

 -- $maintainer  $changelog_date
EOF
gzip -9n < "$work/changelog.Debian" > "$root/usr/share/doc/imgconv/changelog.Debian.gz"

# 4. Depends: what dpkg-shlibdeps finds for every library the binary links (the shlibs and
# symbols files of Debian's runtime packages; it reads debian/control from its folder), and the
# libraries it opens itself.
mkdir -p "$work/shlibs/debian"
printf 'Source: imgconv\n\nPackage: imgconv\nArchitecture: any\n' > "$work/shlibs/debian/control"
depends=$(cd "$work/shlibs" && dpkg-shlibdeps -O -e "$OLDPWD/$root/usr/bin/imgconv" 2>"$OLDPWD/$work/shlibdeps.log") \
  || fail "dpkg-shlibdeps failed: $(tr '\n' ' ' < "$work/shlibdeps.log")"
depends=${depends#shlibs:Depends=}
[ -n "$depends" ] || fail "dpkg-shlibdeps found no dependency"
# libhdf5, libavif and libheif are opened at first use (dlopen: Sources/CShims/lazy_library.c),
# so the binary does not list them: their runtime packages are added here, at the version built
# against.
for soname in libhdf5_serial.so.103 libavif.so.15 libheif.so.1; do
  # The 64-bit entry when there are several (multiarch). awk reads to the end: a reader that
  # stops early would end ldconfig with SIGPIPE, which pipefail turns into a failure.
  path=$(ldconfig -p | awk -v s="$soname" '$1 == s { if (any == "") any = $NF; if (wide == "" && /x86-64|64bit/) wide = $NF }
                                           END { print (wide != "" ? wide : any) }')
  [ -n "$path" ] || fail "$soname is not installed (scripts/setup.sh installs it)"
  package=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | awk -F: 'NR == 1 {print $1}')
  [ -n "$package" ] || fail "no Debian package owns $path"
  upstream=$(dpkg-query -W -f='${Version}' "$package" | sed -e 's/^[0-9]*://' -e 's/-[^-]*$//')
  depends="$depends, $package (>= $upstream)"
done

installed_size=$(du -k -s --apparent-size --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<EOF
Package: imgconv
Version: $deb_version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $depends
Section: science
Priority: optional
Description: convert labeled image folders into training tensors
 imgconv turns a folder with one subfolder of images per class (PNG, JPEG,
 TIFF, BMP, GIF, WebP, AVIF, HEIF) into the tensors machine-learning code
 loads: NumPy .npy and .npz, HDF5 and MNIST-style IDX files, with the class
 names and a JSON manifest of every source file beside them. It also
 converts between these formats, inspects, exports and previews them, and
 verifies a file against its manifest and its source images.
EOF
(cd "$root" && find usr -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"
find "$root" -exec touch --no-dereference -d "@$SOURCE_DATE_EPOCH" {} +

deb=$out_dir/imgconv_${deb_version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
