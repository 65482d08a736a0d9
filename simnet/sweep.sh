#!/usr/bin/env bash
# Randomised SWIM sweep on simnet (not part of the default ctest run).
#
#   simnet/sweep.sh path/to/simnet [runs] [seed]
#   cmake --build <build> --target simnet_sweep        # same, with defaults
#
# For both profiles, 0/5/10 % loss, Lifeguard on and off, 100 nodes:
#  - `runs` crash runs (seeds seed..seed+runs-1, STEADY s of steady phase
#    before each crash): detection first/all p99, undetected crashes, false
#    deaths during those runs;
#  - one long steady run (LONG s): false deaths, suspicions, and the load:
#    every datagram a node sends (pings, acks, ping-reqs, relayed pings and
#    acks, nacks, gossip, push-pull/sync datagrams), per node per second;
# then Lifeguard's degraded-member setting (5 slow members). The seed is
# random unless given, and printed for replay. A false death is any dead
# declaration about a node running its current life, refuted since or not.
# Fails if a crash goes undetected anywhere, if Lifeguard lets a live node be
# declared dead in the loss rows, or a healthy one in the degraded rows (the
# degraded members themselves are reported: under fast they are declared
# dead now and then, see docs/swim.md), or if the fast profile with
# Lifeguard misses its goal (detection p99 <= 2 s at <= 20 datagrams/node/s).
set -u
SIMNET=${1:?usage: sweep.sh path/to/simnet [runs] [seed]}
RUNS=${2:-20}
SEED=${3:-$(( (RANDOM << 15 | RANDOM) ))}
STEADY=${STEADY:-30}
LONG=${LONG:-600}
PROFILES=${PROFILES:-"lan fast"}
echo "simnet sweep: runs=$RUNS seed=$SEED steady=${STEADY}s long=${LONG}s nodes=100"
echo
printf '| profile | loss | Lifeguard | detect first p99 | detect all p99 | undetected | false dead: crash runs / long run (distinct) | suspicions raised (long run) | suspect views of live nodes (long run) | rechecks (long run) | datagrams/node/s | bytes/node/s |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|---|\n'
status=0
field() { # field <text> <label> <awk column>
    printf '%s\n' "$1" | awk -v l="$2" -v c="$3" 'index($0, l) == 1 { print $c; exit }'
}
distinct() { printf '%s\n' "$1" | sed -n 's/.*(\([0-9]*\) distinct.*/\1/p' | head -1; }
# "X about degraded nodes, Y of them; Z about healthy nodes, W of them" -> "X Y Z W"
split_fp() { printf '%s\n' "$1" | sed -n 's/.*; \([0-9]*\) about degraded nodes, \([0-9]*\) of them; \([0-9]*\) about healthy nodes, \([0-9]*\) of them.*/\1 \2 \3 \4/p' | head -1; }
mix=""
for profile in $PROFILES; do
    for loss in 0 0.05 0.10; do
        for lg in on off; do
            flag=""
            [ "$lg" = off ] && flag="--no-lifeguard"
            out=$("$SIMNET" swim --scenario crash --nodes 100 --profile "$profile" --loss "$loss" \
                  --runs "$RUNS" --seed "$SEED" --steady-s "$STEADY" $flag) || { echo "$out"; status=1; continue; }
            long=$("$SIMNET" swim --scenario steady --nodes 100 --profile "$profile" --loss "$loss" \
                   --runs 1 --seed "$SEED" --steady-s "$LONG" $flag) || { echo "$long"; status=1; continue; }
            first=$(field "$out" "detect first" 7)
            all=$(field "$out" "detect all" 7)
            und=$(field "$out" "undetected" 2)
            fp=$(field "$out" "false positives" 3)
            lfp=$(field "$long" "false positives" 3)
            lfpd=$(distinct "$long")
            raised=$(field "$long" "suspicions" 2)
            views=$(field "$long" "suspicions" 7)
            rechecks=$(field "$long" "suspicions" 15)
            msgs=$(field "$long" "load" 2)
            bytes=$(field "$long" "load" 4)
            printf '| %s | %s %% | %s | %s s | %s s | %s | %s / %s (%s) | %s | %s | %s | %s | %s |\n' \
                "$profile" "$(awk -v l="$loss" 'BEGIN { print l * 100 }')" "$lg" "$first" "$all" \
                "$und" "$fp" "$lfp" "$lfpd" "$raised" "$views" "$rechecks" "$msgs" "$bytes"
            mix="$mix$(printf '%s loss %s Lifeguard %s: %s' "$profile" "$loss" "$lg" \
                "$(printf '%s\n' "$long" | sed -n 's/^by type \/node\/s *//p')")"$'\n'
            [ "$und" != 0 ] && { echo "FAIL: undetected crashes ($profile loss $loss lifeguard $lg)"; status=1; }
            if [ "$lg" = on ]; then
                [ "$fp" != 0 ] || [ "$lfp" != 0 ] && { echo "FAIL: Lifeguard declared live nodes dead ($profile loss $loss)"; status=1; }
                if [ "$profile" = fast ] && awk -v a="$all" -v m="$msgs" 'BEGIN { exit !(a > 2.0 || m > 20.0) }'; then
                    echo "FAIL: fast misses its goal at loss $loss (detection p99 $all s, $msgs datagrams/node/s)"
                    status=1
                fi
            fi
        done
    done
done
echo
echo "Datagrams/node/s by type in the long runs:"
printf '%s' "$mix"
echo
echo "Degraded members (Lifeguard's setting): 5 of 100 nodes with Exp(1 s) extra delay on every link, 60 s:"
printf '| profile | Lifeguard | false dead (distinct) | about degraded (distinct) | about healthy (distinct) | suspicions raised | suspect views | rechecks | datagrams/node/s |\n|---|---|---|---|---|---|---|---|---|\n'
for profile in $PROFILES; do
    for lg in on off; do
        flag=""
        [ "$lg" = off ] && flag="--no-lifeguard"
        out=$("$SIMNET" swim --scenario steady --nodes 100 --profile "$profile" --slow-nodes 5 \
              --slow-jitter-ms 1000 --runs "$(( RUNS < 5 ? RUNS : 5 ))" --seed "$SEED" --steady-s 60 $flag) || { echo "$out"; status=1; continue; }
        fp=$(field "$out" "false positives" 3)
        fpd=$(distinct "$out")
        read -r deg degd hea head <<< "$(split_fp "$out")"
        raised=$(field "$out" "suspicions" 2)
        views=$(field "$out" "suspicions" 7)
        rechecks=$(field "$out" "suspicions" 15)
        msgs=$(field "$out" "load" 2)
        printf '| %s | %s | %s (%s) | %s (%s) | %s (%s) | %s | %s | %s | %s |\n' "$profile" "$lg" "$fp" "$fpd" \
            "$deg" "$degd" "$hea" "$head" "$raised" "$views" "$rechecks" "$msgs"
        [ "$lg" = on ] && [ "$hea" != 0 ] && { echo "FAIL: Lifeguard declared healthy members dead (degraded, $profile)"; status=1; }
    done
done
exit $status
