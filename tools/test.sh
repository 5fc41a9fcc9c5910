#!/usr/bin/env bash
# `make test`: every stage in order, one summary line per stage, non-zero if any stage failed
# or skipped work. Usage: tools/test.sh [STAGE...]  (default: all stages)
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo" || exit 1
export PATH="$repo/.venv/bin:$PATH"
out="$repo/tests/output/stages"
mkdir -p "$out"
all_stages=(lint unit sanity integration-host molecule-nftables integration-guest molecule)
stages=("${@:-${all_stages[@]}}")

host_has_ipvs() {
  [ "$(id -u)" = 0 ] && python -c 'from pyroute2 import IPVS; IPVS().service("dump")' >/dev/null 2>&1
}

pytest_stage() {  # pytest with a JUnit report that must show no skip and at least one test
  local report=$1; shift
  python -m pytest -p no:cacheprovider -ra --junitxml="$report" "$@"
  local status=$?
  [ -s "$report" ] || { echo "no test report written"; return 1; }
  python tools/junit-summary.py "$report" && return "$status"
}

stage_lint() {
  local collections
  collections="$(tools/collection-path):$(tools/ansible-collections)" || return 1
  ruff check . && ruff format --check . &&
    ANSIBLE_COLLECTIONS_PATH="$collections" ansible-lint
}

stage_unit() {
  pytest_stage "$out/unit.xml" tests/unit
}

stage_sanity() {
  # ansible-test needs the collection at a real ansible_collections/lvs/ha path (no symlink),
  # outside this git checkout (inside it, git would hide the ignored copy from ansible-test).
  local root status
  root=$(mktemp -d "${TMPDIR:-/tmp}/lvs-ha-sanity.XXXXXX")
  local tree="$root/ansible_collections/lvs/ha"
  mkdir -p "$tree"
  git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$tree"
  (cd "$tree" && ansible-test sanity --local --python 3.11 --color no)
  status=$?
  rm -rf "$root"
  return "$status"
}

stage_integration-host() {
  pytest_stage "$out/integration-host.xml" -m "netns and not ipvs" tests/integration
}

stage_integration-guest() {
  if host_has_ipvs; then
    pytest_stage "$out/integration-guest.xml" -m ipvs tests/integration
  else
    tools/guest/ensure || return 1
    tools/guest/run-tests --junitxml=tests/output/stages/integration-guest.xml tests/integration
    local status=$?
    python tools/junit-summary.py "$out/integration-guest.xml" && return "$status"
  fi
}

stage_molecule-nftables() {  # the lab on the nftables data plane, on this host's kernel
  tools/molecule-nftables
}

stage_molecule() {
  tools/molecule-test
}

run_stage() {
  case $1 in
    lint) stage_lint ;;
    unit) stage_unit ;;
    sanity) stage_sanity ;;
    integration-host) stage_integration-host ;;
    integration-guest) stage_integration-guest ;;
    molecule-nftables) stage_molecule-nftables ;;
    molecule) stage_molecule ;;
    *) echo "unknown stage $1 (stages: ${all_stages[*]})"; return 2 ;;
  esac
}

declare -a summary
failed=0
for stage in "${stages[@]}"; do
  echo "===== stage $stage"
  start=$(date +%s)
  if run_stage "$stage" 2>&1 | tee "$out/$stage.log"; [ "${PIPESTATUS[0]}" = 0 ]; then
    result=PASS
  else
    result=FAIL
    failed=1
  fi
  line=$(printf '%-18s %s  %4ss' "$stage" "$result" "$(($(date +%s) - start))")
  summary+=("$line")
  echo "===== $line"
done

echo
echo "Summary (logs in tests/output/stages/):"
printf '  %s\n' "${summary[@]}"
exit "$failed"
