#!/usr/bin/env bash
# The era benchmarks of BENCHMARKS.md: ipswcheck on IPSWs shaped like the ones people have,
# each figure a ratio to the reference tool run on the same bytes in the same run.
#
#   benches/eras.sh [--scale F] [--samples N] [--out DIR] [--scan-files N] [--scan-scale F]
#                   [--images N] [--only LIST] [--no-build]
#
# (`benches/compare.sh` with no --preset runs this.) Fixtures, made once under DIR
# (default ${TMPDIR:-/tmp}/ipswcheck-bench; about 17 GB at scale 1):
#   modern     stored 2 GiB OS (× scale), deflated Cryptex1 DMGs and ramdisks, ~120 IM4Ps, SHA-384
#   modern-xN  modern with N (--images, default 3) stored images of the OS's size
#   ios18      modern with the OS and SystemOS cryptex as stored .dmg.aea
#   legacy10   deflated OS, SHA-1 (iOS 10.0-10.2)
#   scan       --scan-files (8) copies of modern at --scan-scale (0.25)
#   quick      the real manifests of ../shared (1 MB iOS 26, 0.3 MB iOS 15.7) in a zip
# and the references: `openssl dgst -sha384` / `-sha1`, `sha1sum`, `unzip -tqq` of the same
# file. Every time is the median of N samples (default 5) of wall time, warm page cache;
# anon MB is the peak RssAnon (examples/runstat.rs). The machine load (`uptime`) is
# printed next to every figure: on a shared machine the numbers are only as good as it.
# --only takes a comma list of: modern,multi,ios18,legacy10,scan,quick.

set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SCALE=1
SAMPLES=5
OUT=${TMPDIR:-/tmp}/ipswcheck-bench
SCAN_FILES=8
SCAN_SCALE=0.25
IMAGES=3
ONLY=modern,multi,ios18,legacy10,scan,quick
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --scale) SCALE=$2; shift 2 ;;
        --samples) SAMPLES=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --scan-files) SCAN_FILES=$2; shift 2 ;;
        --scan-scale) SCAN_SCALE=$2; shift 2 ;;
        --images) IMAGES=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "eras.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
want() { case ",$ONLY," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/ipswcheck
EX=$TARGET/release/examples
if [ "$BUILD" = 1 ]; then
    echo "building ..." >&2
    cargo build --release --quiet --bin ipswcheck --example make_fixture --example runstat >&2
fi
mkdir -p "$OUT/runs"

fixture() { # PRESET SCALE -> path (made once)
    local f=$OUT/$1-$2.ipsw
    if [ ! -f "$f" ]; then
        echo "making $f ..." >&2
        "$EX/make_fixture" "$f.tmp" --preset "$1" --scale "$2" >&2
        mv "$f.tmp" "$f"
    fi
    echo "$f"
}
# Microseconds from bash's own clock: `$(date +%s%N)` would time two extra processes
# (about 1-2 ms each here) with every run.
usec() { local t=${EPOCHREALTIME/./}; echo "${t#0}"; }
median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
load() { cut -d' ' -f1 /proc/loadavg; }
# measure NAME FILE_TO_WARM CMD... -> prints "wall cpu anon_mb load" (medians; anon: max)
measure() {
    local name=$1 warmf=$2; shift 2
    local dir=$OUT/runs/$name
    rm -rf "$dir"; mkdir -p "$dir"
    local s
    for s in $(seq "$SAMPLES"); do
        [ -n "$warmf" ] && cat "$warmf" > /dev/null
        echo "load=$(load)" > "$dir/$s"
        "$EX/runstat" --out "$dir/$s.stat" -- "$@" > /dev/null 2>&1 < /dev/null || true
        cat "$dir/$s.stat" >> "$dir/$s"
    done
    local wall cpu anon ld
    wall=$(for f in "$dir"/?; do sed -n 's/^wall_s=//p' "$f"; done | median)
    cpu=$(for f in "$dir"/?; do awk -F= '/^user_s=/{u=$2} /^sys_s=/{s=$2} END{print u+s}' "$f"; done | median)
    anon=$(for f in "$dir"/?; do sed -n 's/^peak_anon_kb=//p' "$f"; done | sort -g | tail -1)
    ld=$(for f in "$dir"/?; do sed -n 's/^load=//p' "$f"; done | median)
    echo "$wall $cpu $(awk -v a="$anon" 'BEGIN {printf "%.1f", a * 1024 / 1e6}') $ld"
}
row() { # LABEL "wall cpu anon load" REF_WALL REF_NAME
    read -r w c a l <<< "$2"
    printf '| %-44s | %8.3f | %8.2f | %8s | %5s | %-30s |\n' "$1" "$w" "$c" "$a" "$l" \
        "$(awk -v w="$w" -v r="$3" 'BEGIN {if (r > 0) printf "%.2f ×", w / r; else print "–"}') $4"
}
header() {
    echo
    echo "### $1"
    echo
    echo "| run | wall s | CPU s | anon MB | load | ratio |"
    echo "|---|---:|---:|---:|---:|---|"
}
verdict() { awk -v a="$1" -v b="$2" 'BEGIN {print (a <= b) ? "met" : "MISSED"}'; }
TARGETS=()

echo "## Machine"
echo
echo "- CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores;" \
     "SHA-NI: $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no)"
echo "- $(rustc --version 2>/dev/null || echo rustc ?); $(openssl version 2>/dev/null || echo 'no openssl')"
echo "- $SAMPLES samples per run, medians, warm page cache; started $(date -u +%H:%MZ)," \
     "uptime: $(uptime | sed 's/.*load/load/')"

if want modern; then
    F=$(fixture modern "$SCALE")
    SHA1=$(sha1sum "$F" | cut -c1-40)
    header "modern: $(basename "$F"), $(stat -c %s "$F") bytes (stored OS, SHA-384)"
    R384=$(measure modern-openssl384 "$F" openssl dgst -sha384 "$F"); R384W=${R384%% *}
    RSHA1=$(measure modern-openssl1 "$F" openssl dgst -sha1 "$F"); RSHA1W=${RSHA1%% *}
    FULL=$(measure modern-full "$F" "$BIN" "$F" --offline); FULLW=${FULL%% *}
    SHA=$(measure modern-sha1 "$F" "$BIN" "$F" --offline --sha1 "$SHA1"); SHAW=${SHA%% *}
    row "openssl dgst -sha384" "$R384" "$R384W" "openssl -sha384"
    row "openssl dgst -sha1" "$RSHA1" "$RSHA1W" "openssl -sha1"
    row "sha1sum" "$(measure modern-sha1sum "$F" sha1sum "$F")" "$RSHA1W" "openssl -sha1"
    row "ipswcheck (full, offline)" "$FULL" "$R384W" "openssl -sha384"
    row "ipswcheck --sha1 (matching)" "$SHA" "$RSHA1W" "openssl -sha1"
    TARGETS+=("modern, full ≤ 1.05 × openssl dgst -sha384: $(awk -v a="$FULLW" -v b="$R384W" 'BEGIN {printf "%.3f s / %.3f s = %.2f ×", a, b, a / b}'): $(verdict "$FULLW" "$(awk -v b="$R384W" 'BEGIN {print 1.05 * b}')")")
    TARGETS+=("modern, matching --sha1 ≤ 1.10 × openssl dgst -sha1: $(awk -v a="$SHAW" -v b="$RSHA1W" 'BEGIN {printf "%.3f s / %.3f s = %.2f ×", a, b, a / b}'): $(verdict "$SHAW" "$(awk -v b="$RSHA1W" 'BEGIN {print 1.10 * b}')")")
fi

if want multi; then
    F=$(fixture "modern-x$IMAGES" "$SCALE")
    header "modern-x$IMAGES: $(basename "$F"), $(stat -c %s "$F") bytes ($IMAGES stored images of the OS's size)"
    R384=$(measure multi-openssl384 "$F" openssl dgst -sha384 "$F"); R384W=${R384%% *}
    # L: the images' SHA-384 streams on 2 cores at OpenSSL speed: ceil(N/2) streams of
    # one image each; the speed is OpenSSL's on this very file.
    IMG=$(awk -v s="$SCALE" 'BEGIN {printf "%.0f", 2 * 1024 * 1024 * 1024 * s}')
    L=$(awk -v t="$R384W" -v img="$IMG" -v size="$(stat -c %s "$F")" -v n="$IMAGES" \
        'BEGIN {printf "%.3f", int((n + 1) / 2) * t * img / size}')
    FULL=$(measure multi-full "$F" "$BIN" "$F" --offline); FULLW=${FULL%% *}
    # L assumes two streams run at once at one stream's speed: check that the 2 cores
    # deliver it (two openssl processes over the same file at the same time).
    TWO=$(measure multi-openssl384-x2 "$F" bash -c 'openssl dgst -sha384 "$1" & openssl dgst -sha384 "$1"; wait' _ "$F")
    row "openssl dgst -sha384 (whole file)" "$R384" "$R384W" "openssl -sha384"
    row "2 × openssl dgst -sha384 at once" "$TWO" "$R384W" "openssl -sha384 (1.00 = 2 free cores)"
    row "ipswcheck (full, offline)" "$FULL" "$L" "L = $L s"
    TARGETS+=("modern-x$IMAGES, full ≤ 1.05 × L: $(awk -v a="$FULLW" -v b="$L" 'BEGIN {printf "%.3f s / %.3f s = %.2f ×", a, b, a / b}'): $(verdict "$FULLW" "$(awk -v b="$L" 'BEGIN {print 1.05 * b}')")")
fi

if want ios18; then
    F=$(fixture ios18 "$SCALE")
    header "ios18: $(basename "$F"), $(stat -c %s "$F") bytes (.dmg.aea images)"
    R384=$(measure ios18-openssl384 "$F" openssl dgst -sha384 "$F"); R384W=${R384%% *}
    row "openssl dgst -sha384" "$R384" "$R384W" "openssl -sha384"
    row "ipswcheck (full, offline)" "$(measure ios18-full "$F" "$BIN" "$F" --offline)" "$R384W" "openssl -sha384"
fi

if want legacy10; then
    F=$(fixture legacy10 "$SCALE")
    header "legacy10: $(basename "$F"), $(stat -c %s "$F") bytes (deflated OS, SHA-1)"
    UNZIP=$(measure legacy-unzip "$F" unzip -tqq "$F"); UNZIPW=${UNZIP%% *}
    FULL=$(measure legacy-full "$F" "$BIN" "$F" --offline); FULLW=${FULL%% *}
    row "unzip -tqq" "$UNZIP" "$UNZIPW" "unzip -tqq"
    row "sha1sum" "$(measure legacy-sha1sum "$F" sha1sum "$F")" "$UNZIPW" "unzip -tqq"
    row "ipswcheck (full, offline)" "$FULL" "$UNZIPW" "unzip -tqq"
    TARGETS+=("legacy10, full ≤ 0.5 × unzip -tqq: $(awk -v a="$FULLW" -v b="$UNZIPW" 'BEGIN {printf "%.3f s / %.3f s = %.2f ×", a, b, a / b}'): $(verdict "$FULLW" "$(awk -v b="$UNZIPW" 'BEGIN {print 0.5 * b}')")")
fi

if want scan; then
    ONE=$(fixture modern "$SCAN_SCALE")
    LIB=$OUT/scan-lib-$SCAN_SCALE-$SCAN_FILES
    if [ ! -d "$LIB" ]; then
        mkdir -p "$LIB.tmp"
        for i in $(seq "$SCAN_FILES"); do cp "$ONE" "$LIB.tmp/modern-$i.ipsw"; done
        mv "$LIB.tmp" "$LIB"
    fi
    header "scan: $SCAN_FILES copies of $(basename "$ONE") ($(stat -c %s "$ONE") bytes each)"
    R384=$(measure scan-openssl384 "$ONE" openssl dgst -sha384 "$ONE"); R384W=${R384%% *}
    L=$(awk -v t="$R384W" -v n="$SCAN_FILES" 'BEGIN {printf "%.3f", t * n / 2}')
    CACHE=$(mktemp -d)
    SCAN=$(measure scan-full "" "$BIN" scan "$LIB" --offline --rehash --cache-dir "$CACHE" --format json); SCANW=${SCAN%% *}
    rm -rf "$CACHE"
    row "openssl dgst -sha384 (one file)" "$R384" "$R384W" "openssl -sha384"
    row "ipswcheck scan --offline --rehash" "$SCAN" "$L" "L = $SCAN_FILES × openssl / 2 = $L s"
    SA=$(echo "$SCAN" | cut -d' ' -f3)
    TARGETS+=("scan of $SCAN_FILES modern files ≤ 1.10 × L: $(awk -v a="$SCANW" -v b="$L" 'BEGIN {printf "%.3f s / %.3f s = %.2f ×", a, b, a / b}'): $(verdict "$SCANW" "$(awk -v b="$L" 'BEGIN {print 1.10 * b}')"); anon $SA MB ≤ 100 MB: $(verdict "$SA" 100)")
fi

if want quick; then
    header "--quick on real manifests (wall per run incl. process start; median of 31, load at start $(load))"
    for m in realdata/iPhone13,2_iPhone13,3_26.2.1_23C71/BuildManifest.plist \
             realdata/iPhone8,1_15.7_19H12/BuildManifest.plist; do
        src=$ROOT/../shared/$m
        [ -f "$src" ] || continue
        z=$OUT/quick-$(basename "$(dirname "$src")").zip
        python3 - "$src" "$z" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[2], "w", zipfile.ZIP_DEFLATED) as z:
    z.write(sys.argv[1], "BuildManifest.plist")
PY
        times=()
        for _ in $(seq 31); do
            t0=$(usec); "$BIN" "$z" --offline --quick > /dev/null 2>&1 || true; t1=$(usec)
            times+=("$(( t1 - t0 ))")
        done
        us=$(printf '%s\n' "${times[@]}" | median)
        kb=$(( $(stat -c %s "$src") / 1000 ))
        target=$([ "$kb" -gt 600 ] && echo 5 || echo 3)
        printf '| %-44s | %8.2f ms | | | %5s | ≤ %s ms: %s |\n' "--quick, $kb KB manifest ($(basename "$(dirname "$src")"))" \
            "$(awk -v u="$us" 'BEGIN {print u / 1000}')" "$(load)" "$target" "$(verdict "$us" $((target * 1000)))"
        TARGETS+=("--quick ≤ $target ms on the $kb KB manifest: $(awk -v u="$us" 'BEGIN {printf "%.2f ms", u / 1000}'): $(verdict "$us" $((target * 1000)))")
    done
    times=()
    for _ in $(seq 31); do
        t0=$(usec); "$BIN" --version > /dev/null; t1=$(usec)
        times+=("$(( t1 - t0 ))")
    done
    printf '| %-44s | %8.2f ms | | | %5s | process start alone |\n' "ipswcheck --version" \
        "$(awk -v u="$(printf '%s\n' "${times[@]}" | median)" 'BEGIN {print u / 1000}')" "$(load)"
fi

echo
echo "## Targets"
echo
for t in "${TARGETS[@]}"; do echo "- $t"; done
echo
echo "finished $(date -u +%H:%MZ), uptime: $(uptime | sed 's/.*load/load/')"
