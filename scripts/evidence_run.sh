#!/usr/bin/env bash
# The evidence run behind the committed leaderboard (issue 20): the `standard` preset, computed in the
# background from a fixed commit in a separate worktree, resumable, its finished cells copied into the
# checkout's evidence store and committed.
#
#   scripts/evidence_run.sh start [COMMIT] [-- OPTIONS]
#                                            worktree ../evidence at COMMIT (default HEAD), seeded with the cells
#                                            already collected, run in the background (nice 10); OPTIONS go to
#                                            `bench run` after the preset, to compute a part first (e.g.
#                                            `-- --methods shortgpt,finercut --seeds 0`: the same cells, same keys)
#   scripts/evidence_run.sh status           the plan and its estimate (`bench run --dry-run`) against the run's store
#   scripts/evidence_run.sh collect          copy the run's finished cells into reports/evidence-store and commit them
#   scripts/evidence_run.sh stop             stop the run (the running cell is lost; `start` resumes)
#
# The run's store lives outside the checkout (../evidence-store), so a half-written cell never reaches git;
# `collect` copies only cells whose record says ok (a record is written last, atomically), and the rounds of
# greedy searches computed so far (searches/, written atomically after each round), so a search of hours
# resumes on a fresh machine. Run `collect` at least every hour. The dense model's layer states that pruned cells
# start from stay in the run's store (`--engine-states store`: ../evidence-store/states, up to 16 GiB, never
# committed; a fresh machine computes them again). Cells are keyed by what determines their results (bench.run.cells), so a later commit that
# changes no evaluation setting resumes the same cells.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WORKTREE=${EVIDENCE_WORKTREE:-$REPO/../evidence}
STORE=${EVIDENCE_STORE:-$REPO/../evidence-store}
DEST=reports/evidence-store
PRESET=${EVIDENCE_PRESET:-standard}
PY=${PYTHON:-$REPO/.venv/bin/python}

case "${1:-}" in
  start)
    shift
    commit=HEAD
    if [ $# -gt 0 ] && [ "$1" != "--" ]; then commit=$1; shift; fi
    [ "${1:-}" = "--" ] && shift
    if [ ! -d "$WORKTREE" ]; then git worktree add --detach "$WORKTREE" "$commit";
    else git -C "$WORKTREE" checkout -q --detach "$(git rev-parse "$commit")"; fi
    mkdir -p "$STORE/cells"
    # resume on a fresh machine: cells already collected into the checkout are not computed again, and
    # greedy searches resume from their collected rounds
    for cell in "$DEST"/cells/*/; do
      [ -d "$cell" ] || continue
      key=$(basename "$cell")
      [ -d "$STORE/cells/$key" ] || cp -r "$cell" "$STORE/cells/$key"
    done
    mkdir -p "$STORE/searches"
    for search in "$DEST"/searches/*.json; do
      [ -f "$search" ] || continue
      name=$(basename "$search")
      # the longer of the two (a search's rounds only grow)
      if [ ! -f "$STORE/searches/$name" ] || [ "$(wc -c < "$search")" -gt "$(wc -c < "$STORE/searches/$name")" ]; then
        cp "$search" "$STORE/searches/$name"
      fi
    done
    (cd "$WORKTREE" && PYTHONPATH="$WORKTREE" setsid nohup nice -n "${EVIDENCE_NICE:-10}" "$PY" -m bench run --preset "$PRESET" --store "$STORE" \
        --plain --no-report --engine-states store "$@" >> "$STORE/run.log" 2>&1 < /dev/null &)
    echo "evidence run started from $(git -C "$WORKTREE" rev-parse --short HEAD); log: $STORE/run.log"
    ;;
  status)
    PYTHONPATH="$WORKTREE" "$PY" -m bench run --preset "$PRESET" --store "$STORE" --dry-run | tail -n 1
    ;;
  collect)
    mkdir -p "$DEST/cells"
    n=0
    for cell in "$STORE"/cells/*/; do
      key=$(basename "$cell")
      [ -f "$cell/record.json" ] || continue
      grep -q '"status": "ok"' "$cell/record.json" || continue
      [ -d "$DEST/cells/$key" ] && continue
      cp -r "$cell" "$DEST/cells/$key.tmp" && mv "$DEST/cells/$key.tmp" "$DEST/cells/$key"
      n=$((n + 1))
    done
    # the rounds of greedy searches still running or stopped (methods.memo): a fresh machine resumes them
    mkdir -p "$DEST/searches"
    s=0
    for search in "$STORE"/searches/*.json; do
      [ -f "$search" ] || continue
      name=$(basename "$search")
      cmp -s "$search" "$DEST/searches/$name" && continue
      cp "$search" "$DEST/searches/$name.tmp" && mv "$DEST/searches/$name.tmp" "$DEST/searches/$name"
      s=$((s + 1))
    done
    paths=()
    [ "$n" -gt 0 ] && paths+=("$DEST/cells")
    [ "$s" -gt 0 ] && paths+=("$DEST/searches")
    if [ "${#paths[@]}" -gt 0 ]; then
      git add -- "${paths[@]}"
      git commit -q -m "Evidence run: $n finished cell(s), $s greedy search(es) advanced, of the $PRESET preset" \
        -- "${paths[@]}"
    fi
    echo "$n new cell(s) and $s search file(s) collected into $DEST"
    ;;
  stop)
    pkill -f -- "--store $STORE" || true
    ;;
  *)
    sed -n '2,16p' "$0"
    exit 2
    ;;
esac
