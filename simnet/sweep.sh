#!/usr/bin/env bash
# Randomised SWIM sweep on simnet (not part of the default ctest run).
#
#   simnet/sweep.sh path/to/simnet [runs] [seed]
#   cmake --build <build> --target simnet_sweep        # same, with defaults
#
# For both profiles, 0/5/10 % loss, Lifeguard on and off, 100 nodes: crash
# runs (detection first/all p99, undetected crashes) with a steady phase that
# counts false positives and load; then Lifeguard's degraded-member setting
# (5 slow members). The seed is random unless given, and printed for replay.
# Fails if a crash goes undetected anywhere, or if Lifeguard lets a live node
# be declared dead.
set -u
SIMNET=${1:?usage: sweep.sh path/to/simnet [runs] [seed]}
RUNS=${2:-20}
SEED=${3:-$(( (RANDOM << 15 | RANDOM) ))}
STEADY=${STEADY:-60}
echo "simnet sweep: runs=$RUNS seed=$SEED steady=${STEADY}s nodes=100"
echo
printf '| profile | loss | lifeguard | detect first p99 | detect all p99 | undetected | false dead (distinct) | suspicions raised | msgs/node/s | bytes/node/s |\n'
printf '|---|---|---|---|---|---|---|---|---|---|\n'
status=0
field() { # field <text> <label> <awk column>
    printf '%s\n' "$1" | awk -v l="$2" -v c="$3" 'index($0, l) == 1 { print $c; exit }'
}
for profile in lan fast; do
    for loss in 0 0.05 0.10; do
        for lg in on off; do
            flag=""
            [ "$lg" = off ] && flag="--no-lifeguard"
            out=$("$SIMNET" swim --scenario crash --nodes 100 --profile "$profile" --loss "$loss" \
                  --runs "$RUNS" --seed "$SEED" --steady-s "$STEADY" $flag) || { echo "$out"; status=1; continue; }
            first=$(field "$out" "detect first" 7)
            all=$(field "$out" "detect all" 7)
            und=$(field "$out" "undetected" 2)
            fp=$(field "$out" "false positives" 3)
            fpd=$(printf '%s\n' "$out" | sed -n 's/.*(\([0-9]*\) distinct.*/\1/p' | head -1)
            raised=$(field "$out" "suspicions" 2)
            msgs=$(field "$out" "load" 2)
            bytes=$(field "$out" "load" 4)
            printf '| %s | %s | %s | %s s | %s s | %s | %s (%s) | %s | %s | %s |\n' \
                "$profile" "$loss" "$lg" "$first" "$all" "$und" "$fp" "$fpd" "$raised" "$msgs" "$bytes"
            [ "$und" != 0 ] && { echo "FAIL: undetected crashes ($profile loss $loss lifeguard $lg)"; status=1; }
            [ "$lg" = on ] && [ "$fp" != 0 ] && { echo "FAIL: Lifeguard declared live nodes dead ($profile loss $loss)"; status=1; }
        done
    done
done
echo
echo "Degraded members (Lifeguard's setting): 5 of 100 nodes with Exp(1 s) extra delay on every link, ${STEADY}s:"
printf '| profile | lifeguard | false dead (distinct) | suspicions raised | suspect views |\n|---|---|---|---|---|\n'
for profile in lan fast; do
    for lg in on off; do
        flag=""
        [ "$lg" = off ] && flag="--no-lifeguard"
        out=$("$SIMNET" swim --scenario steady --nodes 100 --profile "$profile" --slow-nodes 5 \
              --slow-jitter-ms 1000 --runs "$(( RUNS < 5 ? RUNS : 5 ))" --seed "$SEED" --steady-s "$STEADY" $flag) || { echo "$out"; status=1; continue; }
        fp=$(field "$out" "false positives" 3)
        fpd=$(printf '%s\n' "$out" | sed -n 's/.*(\([0-9]*\) distinct.*/\1/p' | head -1)
        raised=$(field "$out" "suspicions" 2)
        views=$(field "$out" "suspicions" 7)
        printf '| %s | %s | %s (%s) | %s | %s |\n' "$profile" "$lg" "$fp" "$fpd" "$raised" "$views"
        [ "$lg" = on ] && [ "$fp" != 0 ] && { echo "FAIL: Lifeguard declared live nodes dead (degraded, $profile)"; status=1; }
    done
done
exit $status
