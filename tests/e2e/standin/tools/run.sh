#!/bin/bash
# run.sh of a pack_tools package: a test double of apache/incubator-pegasus run.sh
# (v2.5.0) for the subcommands an operator runs from the tools package: shell,
# migrate_node, downgrade_node. Options, messages and exit codes as upstream's;
# like upstream it must run from the package's directory (ROOT is the working
# directory) and finds the shell under build/latest/output, which pack_tools
# does not create: whoever installs the package links it (see install_tools).
set -e

PID=$$
ROOT=$(pwd)
export BUILD_ROOT_DIR=$ROOT/build
export BUILD_LATEST_DIR=$BUILD_ROOT_DIR/latest
export LD_LIBRARY_PATH=$JAVA_HOME/jre/lib/amd64/server:$BUILD_LATEST_DIR/output/lib:$ROOT/thirdparty/output/lib:$LD_LIBRARY_PATH

shell_usage() {
  echo "Options for subcommand 'shell':"
  echo "   -h|--help            print the help info"
  echo "   -c|--config <path>   config file path, default './config-shell.ini.{PID}'"
  echo "   --cluster <str>      cluster meta lists, default '127.0.0.1:34601,127.0.0.1:34602,127.0.0.1:34603'"
  echo "   -n <cluster-name>    cluster name."
}

run_shell() {
  local config=$ROOT/config-shell.ini.$PID config_given=0
  local cluster=127.0.0.1:34601,127.0.0.1:34602,127.0.0.1:34603 cluster_given=0
  local name=onebox name_given=0
  while [[ $# -gt 0 ]]; do
    case $1 in
      -h|--help) shell_usage; exit 0 ;;
      -c|--config) config=$2; config_given=1; shift ;;
      -m|--cluster) cluster=$2; cluster_given=1; shift ;;
      -n|--cluster_name) name=$2; name_given=1; shift ;;
      *) echo "ERROR: unknown option \"$1\""; echo; shell_usage; exit 1 ;;
    esac
    shift
  done
  if [[ $cluster_given -eq 1 && $name_given -eq 1 ]]; then
    echo "ERROR: can not specify both cluster and cluster_name at the same time"; echo; shell_usage; exit 1
  fi
  [[ $cluster_given -eq 0 ]] || name=unknown
  if [[ $name_given -eq 1 ]]; then
    echo "ERROR: can't find minos config file for $name, please check env \$MINOS2_CONFIG_FILE or \$MINOS_CONFIG_FILE"
    exit 1
  fi
  if [[ $config_given -eq 0 ]]; then
    sed "s/@CLUSTER_NAME@/$name/g;s/@CLUSTER_ADDRESS@/$cluster/g" "$ROOT/src/shell/config.ini" >"$config"
  fi
  cd "$ROOT"
  ln -s -f "$BUILD_LATEST_DIR/output/bin/pegasus_shell/pegasus_shell" .
  ./pegasus_shell "$config" "$name"
  [[ $config_given -eq 1 ]] || rm -f "$config"
}

# migrate_node and downgrade_node share their options (run.sh, v2.5.0).
run_node_tool() {
  local tool=$1 cluster='' config='' node='' app='*' type=test
  shift
  while [[ $# -gt 0 ]]; do
    case $1 in
      -h|--help) echo "Options for subcommand '$tool': -c|--cluster -f|--config -n|--node -a|--app -t|--type"; exit 0 ;;
      -c|--cluster) cluster=$2; shift ;;
      -f|--config) config=$2; shift ;;
      -n|--node) node=$2; shift ;;
      -a|--app) app=$2; shift ;;
      -t|--type) type=$2; shift ;;
      *) echo "ERROR: unknown option \"$1\""; exit 1 ;;
    esac
    shift
  done
  [[ -n $cluster || -n $config ]] || { echo "ERROR: no cluster specified"; exit 1; }
  [[ -n $node ]] || { echo "ERROR: no node specified"; exit 1; }
  [[ $type == test || $type == run ]] || { echo "ERROR: invalid type $type"; exit 1; }
  if [[ -n $cluster ]]; then echo "CLUSTER=$cluster"; else echo "CONFIG=$config"; fi
  echo "NODE=$node"; echo "APP=$app"; echo "TYPE=$type"; echo
  cd "$ROOT"
  echo "------------------------------"
  if [[ -n $cluster ]]; then
    ./scripts/"$tool".sh "$cluster" "$node" "$app" "$type"
  else
    ./scripts/"$tool".sh "$config" "$node" "$app" "$type" -f
  fi
  echo "------------------------------"
  echo
  if [[ $type == test ]]; then
    echo "The above is sample commands."
  else
    echo "Done."
    echo "You can run shell command 'nodes -d' to check the result."
    echo
    echo "The cluster's auto migration is disabled now, you can run shell command 'set_meta_level lively' to enable it again."
  fi
}

case ${1:-} in
  shell) shift; run_shell "$@" ;;
  migrate_node|downgrade_node) run_node_tool "$@" ;;
  *) echo "usage: run.sh <command> [<args>]"; exit 1 ;;
esac
