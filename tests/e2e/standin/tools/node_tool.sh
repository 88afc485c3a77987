#!/bin/bash
# scripts/migrate_node.sh and scripts/downgrade_node.sh of a pack_tools package:
# a test double of both (apache/incubator-pegasus scripts/*.sh, v2.5.0), shipped
# under each name; the name picks the tool.
#   migrate_node:   for every partition the node leads, one
#                   `balance --gpid A.P --type move_pri -f NODE -t <one of its secondaries>`
#   downgrade_node: for every partition where the node is a secondary, one
#                   `propose --gpid A.P --type DOWNGRADE_TO_INACTIVE -t <primary> -n NODE`
#                   (refused: a partition without primary, led by the node, or with one secondary)
# Both first run `set_meta_level steady`, read `ls` and `app <name> -d`, print the
# commands (test) or pipe them into the shell (run).
# As released in 2.5.0, downgrade_node.sh does nothing when given a meta list:
# its `if [ [ "$cluster" != "" ]` always fails, so it runs the shell with an
# empty --config, and under `set -e` the first line of output without a
# bracket ends the script (fixed upstream in #2056, after 2.5). The double
# keeps that: drive `propose` through the shell instead.
set -e
tool=$(basename "$0" .sh)
if [[ $# -ne 4 && $# -ne 5 ]]; then echo "USAGE: $0 <cluster-meta-list> <node> <app-name> <run|test>"; exit 1; fi
cd "$(dirname "$0")/.."
cluster='' config=''
if [[ $# -eq 4 ]]; then cluster=$1; elif [[ $5 == -f ]]; then config=$1; else echo "ERROR: invalid option: $5"; exit 1; fi
node=$2 app_name=$3 type=$4
[[ $type == run || $type == test ]] || { echo "ERROR: invalid type: $type"; exit 1; }
release=$(awk '{print $3}' VERSION)
if [[ $tool == downgrade_node && $release == 2.5.* ]]; then
  cluster=''
fi
shell() {
  if [[ -n $cluster ]]; then ./run.sh shell --cluster "$cluster"; else ./run.sh shell --config "$config"; fi
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "set_meta_level steady" | shell &>"$tmp/level" || true
echo ls | shell &>"$tmp/ls" || true
while read -r line; do
  read -r gid status app _ <<<"$line" || true
  [[ $status == AVAILABLE ]] || continue
  [[ $app_name == '*' || $app_name == "$app" ]] || continue
  echo "app $app -d" | shell &>"$tmp/app" || true
  : >"$tmp/cmd"
  while read -r row; do
    read -r pidx _ _ primary secondaries _ <<<"$row" || true
    [[ $secondaries == \[*\] ]] || continue
    list=${secondaries#[}; list=${list%]}
    if [[ $tool == migrate_node ]]; then
      [[ $primary == "$node" && -n $list ]] || continue
      IFS=, read -r -a secs <<<"$list"
      echo "balance --gpid $gid.$pidx --type move_pri -f $node -t ${secs[$((RANDOM % ${#secs[@]}))]}" >>"$tmp/cmd"
    else
      [[ ,$list, == *",$node,"* ]] || continue
      [[ $primary != - ]] || { echo "ERROR: can't downgrade $gid.$pidx because it is unhealthy"; exit 1; }
      [[ $primary != "$node" ]] || { echo "ERROR: can't downgrade $gid.$pidx because $node is primary"; exit 1; }
      [[ $list == *,* ]] || { echo "ERROR: can't downgrade $gid.$pidx because it is unhealthy"; exit 1; }
      echo "propose --gpid $gid.$pidx --type DOWNGRADE_TO_INACTIVE -t $primary -n $node" >>"$tmp/cmd"
    fi
  done <"$tmp/app"
  cat "$tmp/cmd"
  if [[ $type == run ]]; then shell <"$tmp/cmd" 2>/dev/null; fi
done <"$tmp/ls"
