#!/usr/bin/env bash
# Without --preset or --fixture: the era benchmarks (modern, modern-xN, ios18, legacy10,
# scan, --quick on real manifests), each as a ratio to openssl/sha1sum/unzip on the same
# bytes: `benches/eras.sh`, which takes the other options (see its header).
#
# With --preset or --fixture: compare ipswcheck with the usual archive testers on one
# benchmark IPSW, on this machine.
#
#   benches/compare.sh [--preset bench|bench-sha1|bench-stored] [--scale F] [--fixture FILE]
#                      [--samples N] [--device PRODUCT_TYPE] [--cold] [--no-build]
#                      [--max-wait SECONDS]
#
# Builds the release binary and the helper examples, makes the fixture under bench-out/
# if it is missing (about 3 GB, a minute or two), then reports for each tool the median
# over N samples (default 5) of wall time, CPU time (user + sys) and peak anonymous
# memory, with every wall time as a ratio to the limit L and to `unzip -tqq`:
#
#   L = max(T_big, T_all / cores), measured in-process by examples/limit.rs: T_big is
#   inflate + CRC-32 + hash of the largest entry on one core, T_all the same for every
#   entry one after the other. L_pipe = max(inflate_big, hash_big, T_all / cores) is the
#   floor when the largest entry's inflate and hash run on two cores (BENCHMARKS.md).
#
# Warm cache is the primary figure: the fixture is read once before measuring, so every
# tool reads it from the page cache. --cold drops the page cache before every sample
# (needs root: `echo 3 > /proc/sys/vm/drop_caches`); L is always warm.
#
# Memory is RssAnon (heap, stacks, buffers), polled every 2 ms from /proc/PID/status by
# examples/runstat.rs: not the mapped file's pages (RssFile), which the kernel reclaims
# at will and which would make a memory-mapped reader look as big as the file.
#
# Before each sample the script waits (up to --max-wait seconds, default 120) for the
# machine to be idle, and redoes a sample (up to 3 times) when other processes used more
# than 5 % of the machine's CPU meanwhile; the `other CPU` column shows what remained.
# Tools that are not installed are skipped (apt-get install unzip p7zip-full
# libarchive-tools).

set -euo pipefail

case " $* " in
    *" --preset "*|*" --fixture "*) ;;
    *) exec bash "$(dirname "$0")/eras.sh" "$@" ;;
esac

cd "$(dirname "$0")/.."
ROOT=$(pwd)

PRESET=bench
SCALE=1
FIXTURE=
SAMPLES=5
DEVICE=iPhone9,3
COLD=0
BUILD=1
MAX_WAIT=120
SMALL_SCALE=0.01

while [ $# -gt 0 ]; do
    case "$1" in
        --preset) PRESET=$2; shift 2 ;;
        --scale) SCALE=$2; shift 2 ;;
        --fixture) FIXTURE=$2; shift 2 ;;
        --samples) SAMPLES=$2; shift 2 ;;
        --device) DEVICE=$2; shift 2 ;;
        --cold) COLD=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --max-wait) MAX_WAIT=$2; shift 2 ;;
        -h|--help) sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

OUT=$ROOT/bench-out
mkdir -p "$OUT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/ipswcheck
EX=$TARGET/release/examples

if [ "$BUILD" = 1 ]; then
    echo "building (cargo build --release) ..." >&2
    cargo build --release --quiet --bin ipswcheck \
        --example make_fixture --example limit --example runstat >&2
fi

if [ -z "$FIXTURE" ]; then
    FIXTURE=$OUT/$PRESET-$SCALE.ipsw
fi
if [ ! -f "$FIXTURE" ]; then
    echo "making $FIXTURE (preset $PRESET, scale $SCALE) ..." >&2
    "$EX/make_fixture" "$FIXTURE" --preset "$PRESET" --scale "$SCALE" >&2
fi
SMALL=$OUT/$PRESET-$SMALL_SCALE.ipsw
if [ ! -f "$SMALL" ]; then
    "$EX/make_fixture" "$SMALL" --preset "$PRESET" --scale "$SMALL_SCALE" >/dev/null
fi

# The benchmark presets have their own devices: take the first SupportedProductType
# when the one asked for is not among them.
if ! "$BIN" "$FIXTURE" --device "$DEVICE" --offline --quick >/dev/null 2>&1; then
    DEVICE=$("$BIN" "$FIXTURE" --offline --quick --json 2>/dev/null |
        sed -n '/supported_product_types/,/]/p' | grep -o '"[A-Za-z]*[0-9]*,[0-9]*"' |
        head -1 | tr -d '"')
fi

CORES=$(nproc)

# --- machine ---------------------------------------------------------------------------
flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
has() { case " $flags " in *" $1 "*) echo yes ;; *) echo no ;; esac; }
echo "## Machine"
echo
echo "- CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $CORES cores" \
     "($(lscpu | sed -n 's/^Thread(s) per core: *//p') thread(s) per core)"
echo "- SHA-NI: $(has sha_ni), AVX2: $(has avx2), AVX-512F: $(has avx512f)," \
     "VPCLMULQDQ: $(has vpclmulqdq)"
echo "- RAM: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "- Kernel: $(uname -sr)"
echo "- $(rustc --version 2>/dev/null || echo 'rustc: not found')"
echo "- Fixture: $(basename "$FIXTURE"), $(stat -c %s "$FIXTURE") bytes;" \
     "device $DEVICE; $SAMPLES samples per tool, medians;" \
     "$([ "$COLD" = 1 ] && echo 'cold cache' || echo 'warm cache')"
echo

# --- helpers ---------------------------------------------------------------------------
busy_pct() { # busy share of the whole machine over $1 seconds
    local a b c d e f g h t1 i1 t2 i2
    read -r _ a b c d e f g h _ < /proc/stat; t1=$((a+b+c+d+e+f+g+h)); i1=$((d+e))
    sleep "$1"
    read -r _ a b c d e f g h _ < /proc/stat; t2=$((a+b+c+d+e+f+g+h)); i2=$((d+e))
    echo $(( 100 - 100 * (i2 - i1) / (t2 - t1 + 1) ))
}
wait_quiet() {
    local start=$SECONDS
    while [ "$(busy_pct 1)" -ge 10 ]; do
        if [ $((SECONDS - start)) -ge "$MAX_WAIT" ]; then
            break
        fi
    done
    return 0
}
drop_caches() {
    sync
    if ! echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then
        echo "compare.sh: cannot drop caches (not root?): measuring warm" >&2
        COLD=0
    fi
}
warm() { cat "$FIXTURE" "$SMALL" > /dev/null; }
kv() { sed -n "s/^$1=//p" "$2"; }
median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
max() { sort -g | tail -1; }

# run LABEL CMD... : SAMPLES samples of CMD under runstat; results in $OUT/runs/LABEL.N
declare -a LABELS=()
run() {
    local label=$1; shift
    local dir=$OUT/runs/$label
    rm -rf "$dir"; mkdir -p "$dir"
    local s attempt
    for s in $(seq "$SAMPLES"); do
        for attempt in 1 2 3; do
            if [ "$COLD" = 1 ]; then drop_caches; else warm; fi
            wait_quiet
            "$EX/runstat" --out "$dir/$s" -- "$@" > /dev/null 2>&1 < /dev/null
            local wall foreign
            wall=$(kv wall_s "$dir/$s"); foreign=$(kv foreign_cpu_s "$dir/$s")
            awk -v w="$wall" -v f="$foreign" -v c="$CORES" 'BEGIN {exit !(f > 0.05 * w * c + 0.02)}' \
                || break
        done
    done
    LABELS+=("$label")
}
stat_of() { # LABEL KEY -> median over samples
    local f
    for f in "$OUT/runs/$1"/*; do kv "$2" "$f"; done | median
}
stat_max() {
    local f
    for f in "$OUT/runs/$1"/*; do kv "$2" "$f"; done | max
}

# --- limit -----------------------------------------------------------------------------
warm
wait_quiet
echo "measuring L in-process (examples/limit.rs) ..." >&2
"$EX/limit" "$FIXTURE" --device "$DEVICE" --samples 3 --kv > "$OUT/limit.txt"
L=$(kv L_s "$OUT/limit.txt")
L_PIPE=$(kv L_pipe_s "$OUT/limit.txt")

# --- tools -----------------------------------------------------------------------------
echo "running the tools ..." >&2
run "ipswcheck --quick" "$BIN" "$FIXTURE" --device "$DEVICE" --offline --quick
run "ipswcheck --quick (scale $SMALL_SCALE)" "$BIN" "$SMALL" --device "$DEVICE" --offline --quick
run "ipswcheck (full)" "$BIN" "$FIXTURE" --device "$DEVICE" --offline
if command -v sha1sum >/dev/null; then
    SHA1=$(sha1sum "$FIXTURE" | cut -c1-40)
else
    SHA1=0000000000000000000000000000000000000000
fi
run "ipswcheck --sha1" "$BIN" "$FIXTURE" --device "$DEVICE" --offline --sha1 "$SHA1"
command -v unzip >/dev/null && run "unzip -tqq" unzip -tqq "$FIXTURE"
command -v sha1sum >/dev/null && run "sha1sum" sha1sum "$FIXTURE"
command -v 7z >/dev/null && run "7z t" 7z t "$FIXTURE"
command -v bsdtar >/dev/null && run "bsdtar -xOf (test)" bsdtar -xOf "$FIXTURE"

# --- table -----------------------------------------------------------------------------
UNZIP=nan
[ -d "$OUT/runs/unzip -tqq" ] && UNZIP=$(stat_of "unzip -tqq" wall_s)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == "nan" || b == 0) print "–"; else printf "%.2f", a / b}'; }

echo "## Limit (examples/limit.rs, one core, median of 3)"
echo
awk -F= '{v[$1] = $2} END {
    printf "- largest entry: %s (%s, %.0f MB, hashed with %s)\n", v["big_entry"], v["big_method"], v["big_bytes"] / 1e6, v["big_algorithms"]
    printf "- inflate + CRC-32 of it: %.3f s; its hash: %.3f s; both fused on one core (T_big): %.3f s\n", v["big_stream_s"], v["big_hash_s"], v["t_big_s"]
    printf "- every entry on one core (T_all): %.3f s; whole-file SHA-1: %.3f s\n", v["t_all_s"], v["whole_sha1_s"]
    printf "- **L = max(T_big, T_all / %d) = %.3f s**; L_pipe = max(inflate, hash, T_all / %d) = %.3f s\n", v["cores"], v["L_s"], v["cores"], v["L_pipe_s"]
    printf "- with --sha1: L = %.3f s, L_pipe = %.3f s\n", v["L_sha1_s"], v["L_pipe_sha1_s"]
}' "$OUT/limit.txt"
echo
echo "## Results"
echo
printf '| %-34s | %9s | %9s | %12s | %7s | %7s | %9s | %9s |\n' \
    tool "wall s" "CPU s" "anon MB" "× L" "× unzip" "other CPU" "exit"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..36})" \
    "-----------:" "-----------:" "-------------:" "--------:" "--------:" "-----------:" "-----------:"
for label in "${LABELS[@]}"; do
    wall=$(stat_of "$label" wall_s)
    cpu=$(stat_of "$label" cpu_s)
    anon=$(stat_max "$label" peak_anon_kb)
    foreign=$(stat_of "$label" foreign_cpu_s)
    code=$(stat_max "$label" exit)
    case "$label" in
        *--quick*) wall_fmt=$(awk -v w="$wall" 'BEGIN {printf "%.1f ms", w * 1000}') ;;
        *) wall_fmt=$(awk -v w="$wall" 'BEGIN {printf "%.2f", w}') ;;
    esac
    printf '| %-34s | %9s | %9.2f | %12.1f | %7s | %7s | %9.2f | %9s |\n' \
        "$label" "$wall_fmt" "$cpu" "$(awk -v a="$anon" 'BEGIN {print a * 1024 / 1e6}')" \
        "$(ratio "$wall" "$L")" "$(ratio "$wall" "$UNZIP")" "$foreign" "$code"
done
echo
echo "anon MB: the highest RssAnon over all samples; other CPU: CPU seconds other processes used during the median sample (0 = a clean run)."
echo

# --- targets ---------------------------------------------------------------------------
FULL=$(stat_of "ipswcheck (full)" wall_s)
SHA=$(stat_of "ipswcheck --sha1" wall_s)
QUICK=$(stat_of "ipswcheck --quick" wall_s)
QUICK_SMALL=$(stat_of "ipswcheck --quick (scale $SMALL_SCALE)" wall_s)
ANON=0
for label in "${LABELS[@]}"; do
    case "$label" in ipswcheck*) a=$(stat_max "$label" peak_anon_kb); [ "$a" -gt "$ANON" ] && ANON=$a ;; esac
done
verdict() { awk -v a="$1" -v b="$2" 'BEGIN {print (a <= b) ? "met" : "MISSED"}'; }
echo "## Targets"
echo
awk -v q="$QUICK" -v qs="$QUICK_SMALL" 'BEGIN {printf "- --quick ≤ 10 ms: %.1f ms (%.1f ms at scale '"$SMALL_SCALE"'): ", q * 1000, qs * 1000}'
verdict "$QUICK" 0.010
awk -v f="$FULL" -v l="$L" -v lp="$L_PIPE" 'BEGIN {printf "- full ≤ 1.15 × L: %.2f s = %.2f × L (L = %.2f s; L_pipe = %.2f s, full = %.2f × L_pipe): ", f, f / l, l, lp, f / lp}'
verdict "$FULL" "$(awk -v l="$L" 'BEGIN {print 1.15 * l}')"
if [ "$UNZIP" != nan ]; then
    awk -v f="$FULL" -v u="$UNZIP" 'BEGIN {printf "- full ≤ 0.5 × unzip -tqq: %.2f s = %.2f × %.2f s: ", f, f / u, u}'
    verdict "$FULL" "$(awk -v u="$UNZIP" 'BEGIN {print 0.5 * u}')"
fi
awk -v s="$SHA" -v f="$FULL" 'BEGIN {printf "- --sha1 adds ≤ 10 %%: %+.1f %% (%.2f s vs %.2f s): ", 100 * (s / f - 1), s, f}'
verdict "$SHA" "$(awk -v f="$FULL" 'BEGIN {print 1.10 * f}')"
awk -v a="$ANON" 'BEGIN {printf "- anonymous memory ≤ 100 MB: %.1f MB: ", a * 1024 / 1e6}'
verdict "$ANON" 97656
