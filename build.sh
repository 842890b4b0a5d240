#!/usr/bin/env bash
# kvc's one entry point.
#   ./build.sh           install what is missing, build bin/kvc and bin/kvc-view
#   ./build.sh shaders   compile shaders/*.comp (and their variants) to shaders/spv/*.spv, validate them
#   ./build.sh test      check the committed SPIR-V is current, go vet, go test with Vulkan required + validation
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages: build-time (headers, shader tools) and run-time (loader, lavapipe, validation layer).
PKGS=(libvulkan-dev libvulkan1 mesa-vulkan-drivers glslc spirv-tools vulkan-validationlayers vulkan-tools)
# kvc-view: GLFW is compiled by cgo against X11 (go vet and go test need these headers too); its window
# test runs under Xvfb, types with xdotool and captures with ImageMagick.
PKGS+=(libx11-dev libxrandr-dev libxinerama-dev libxcursor-dev libxi-dev libxxf86vm-dev libgl1-mesa-dev
  xvfb xdotool imagemagick)

need_pkgs() {
  local missing=()
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "build.sh: installing ${missing[*]}" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "build.sh: missing packages; run as root:" >&2
    echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
}

# shaders/*.variants: one line per SPIR-V module: "<output name> <source .comp> [-DNAME=VALUE ...]".
build_shaders() {
  local out=${1:-shaders/spv}
  mkdir -p "$out"
  local n=0
  while read -r name src defs; do
    case "$name" in ''|'#'*) continue ;; esac
    # shellcheck disable=SC2086
    glslc --target-env=vulkan1.2 -O -Ishaders $defs "shaders/$src" -o "$out/$name.spv"
    spirv-val --target-env vulkan1.2 "$out/$name.spv"
    n=$((n+1))
  done < <(cat shaders/*.variants)
  echo "build.sh: $n SPIR-V modules in $out" >&2
}

check_shaders() {
  local tmp; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' RETURN
  build_shaders "$tmp" 2>/dev/null
  local stale=0
  for f in "$tmp"/*.spv; do
    cmp -s "$f" "shaders/spv/$(basename "$f")" || { echo "build.sh: shaders/spv/$(basename "$f") is stale: run ./build.sh shaders" >&2; stale=1; }
  done
  for f in shaders/spv/*.spv; do
    [ -e "$f" ] || continue
    [ -e "$tmp/$(basename "$f")" ] || { echo "build.sh: $f has no line in any shaders/*.variants" >&2; stale=1; }
  done
  [ $stale -eq 0 ]
}

build_bin() {
  mkdir -p bin
  go build -o bin/kvc ./cmd/kvc
  go build -o bin/kvc-view ./cmd/kvc-view
}

case "${1:-build}" in
  build)
    need_pkgs
    build_bin
    ;;
  shaders)
    need_pkgs
    build_shaders
    ;;
  test)
    need_pkgs
    check_shaders
    go vet ./...
    build_bin
    # Vulkan tests must fail rather than skip here, and run under the validation layer.
    KVC_REQUIRE_VULKAN=1 KVC_VALIDATION=1 go test -count=1 -timeout 40m ./... 2>&1
    ;;
  *)
    echo "usage: ./build.sh [build|shaders|test]" >&2
    exit 2
    ;;
esac
