#!/usr/bin/env bash
# Takes a new user from a fresh clone to a stack `pulumi up` can run: selects
# (or creates) the stack on the chosen backend, says how the passphrase works,
# offers to make an SSH key pair when the stack has none, and lists in one
# message whatever the user must still decide (region, admin range, package).
# Usage: prepare-stack.sh STACK   (PULUMI_BACKEND_URL set by the Makefile;
# ASSUME_YES=1 answers yes to the key pair question, for scripts;
# PEGASUS_STACK_DEFAULTED=1 when the user chose no stack: on a machine without
# AWS credentials it then offers the local stack instead).
set -euo pipefail

stack=${1:?usage: prepare-stack.sh STACK}
project_dir=$(cd "$(dirname "$0")/.." && pwd)
stack_file=$project_dir/stacks/Pulumi.$stack.yaml
key_dir=${PEGASUS_KEY_DIR:-$HOME/.ssh}
pack_server_hint="build it in a Pegasus checkout with ./run.sh build, then ./run.sh pack_server"

say() { printf 'make: %s\n' "$*"; }

# Where the AWS provider would find credentials (environment, shared files).
has_aws_credentials() {
  [[ -n ${AWS_ACCESS_KEY_ID:-}${AWS_PROFILE:-}${AWS_WEB_IDENTITY_TOKEN_FILE:-} ]] \
    || [[ -n ${AWS_CONTAINER_CREDENTIALS_RELATIVE_URI:-}${AWS_CONTAINER_CREDENTIALS_FULL_URI:-} ]] \
    || [[ -f ${AWS_SHARED_CREDENTIALS_FILE:-$HOME/.aws/credentials} || -f ${AWS_CONFIG_FILE:-$HOME/.aws/config} ]]
}

# No stack chosen and no way to reach AWS: the default stack cannot work here,
# a cluster on this machine can. Say so before any stack is created.
if [[ ${PEGASUS_STACK_DEFAULTED:-} == 1 ]] && ! has_aws_credentials; then
  say "no stack chosen, so stack $stack, which deploys on AWS; but this machine has no AWS credentials"
  say "  (none of AWS_PROFILE, AWS_ACCESS_KEY_ID, ~/.aws/credentials or ~/.aws/config)."
  say "Try Pegasus on this machine instead: a few local machines, listed as your own servers in stacks/Pulumi.local.yaml:"
  step=1
  if [[ ! -f $project_dir/stacks/Pulumi.local.yaml ]]; then
    if ! compgen -G "$project_dir/packages/pegasus-server-*.tar.gz" >/dev/null; then
      say "  $step. your server package: $pack_server_hint; put the tarball under packages/ (or add PACKAGE=<its path> to the next command)"
      step=$((step + 1))
    fi
    say "  $step. sudo make local-machines   (root and systemd-nspawn; boots 6 small machines)"
    step=$((step + 1))
  fi
  say "  $step. make up STACK=local"
  say "To deploy on AWS, set up credentials (e.g. export AWS_PROFILE=...) or choose the stack: make up STACK=$stack"
  exit 1
fi

# Secrets of a self-managed backend are encrypted with a passphrase.
if [[ ${PULUMI_BACKEND_URL:-} != https://* && -z ${PULUMI_CONFIG_PASSPHRASE:-} \
      && -z ${PULUMI_CONFIG_PASSPHRASE_FILE:-} ]]; then
  say "the stack's secrets (the SSH private key) are encrypted with a passphrase: Pulumi asks for it below."
  say "  To skip the question next time: export PULUMI_CONFIG_PASSPHRASE_FILE=<file holding it>."
  say "  Keep it: without it nobody can update or destroy this stack."
fi

[[ -f $stack_file ]] || say "stacks/Pulumi.$stack.yaml does not exist yet: it is created empty; copy the settings you need from stacks/Pulumi.dev.yaml"
# (No output redirection on commands that may ask for the passphrase: the
# question must stay visible.)
pulumi stack select --create "$stack"
say "stack $stack on ${PULUMI_BACKEND_URL:-Pulumi Cloud}"

# Plain values only: reading a secret would need the passphrase.
config() { pulumi config get --stack "$stack" --path "$1" 2>/dev/null; }
# The public half stands for the pair (the program checks both, and that the
# private half is a secret).
has_key_pair() { config pegasus:ssh.publicKey >/dev/null; }

if ! has_key_pair; then
  key=$key_dir/pegasus_$stack
  answer=n
  if [[ ${ASSUME_YES:-} == 1 ]]; then
    answer=y
  elif [[ -t 0 ]]; then
    read -r -p "make: stack $stack has no SSH key pair. Create $key and set it on the stack? [Y/n] " answer
    answer=${answer:-y}
  fi
  if [[ $answer == [yY]* ]]; then
    mkdir -p -- "$key_dir"
    if [[ ! -f $key ]]; then
      ssh-keygen -q -t ed25519 -N '' -C "pegasus-$stack" -f "$key"
      say "created $key and $key.pub (keep them: they log in to every server)"
    else
      say "using the existing $key"
    fi
    pulumi config set --stack "$stack" --secret --path pegasus:ssh.privateKey <"$key"
    pulumi config set --stack "$stack" --path pegasus:ssh.publicKey "$(cat -- "$key.pub")"
    say "set pegasus:ssh.privateKey (as a secret) and pegasus:ssh.publicKey"
  fi
fi

# What only the user can decide, all in one message.
todo=()
has_key_pair || todo+=(
  "an SSH key pair: ssh-keygen -t ed25519 -f ~/.ssh/pegasus_$stack, then
      pulumi config set --secret --path pegasus:ssh.privateKey < ~/.ssh/pegasus_$stack
      pulumi config set --path pegasus:ssh.publicKey \"\$(cat ~/.ssh/pegasus_$stack.pub)\"")
if config pegasus:servers >/dev/null; then  # your own servers: nothing of AWS to decide
  config pegasus:ssh.user >/dev/null \
    || todo+=("the login user on your servers (root, or one with passwordless sudo): pulumi config set --path pegasus:ssh.user <user>")
else
  config aws:region >/dev/null || todo+=("the AWS region: pulumi config set aws:region eu-west-1")
  admin=$(config pegasus:network.adminCidr || true)
  if [[ -z $admin ]] && ! config pegasus:ssh.bastion.host >/dev/null; then
    todo+=("the range you connect from (SSH is open to it only): pulumi config set --path pegasus:network.adminCidr 198.51.100.0/24")
  elif [[ $admin == 203.0.113.* ]]; then
    todo+=("your own admin range: $admin is a documentation range nobody connects from; pulumi config set --path pegasus:network.adminCidr <your range>")
  fi
fi
package=$(config pegasus:package || true)
if [[ -z $package ]]; then
  todo+=("the server package that Pegasus's pack_server made: pulumi config set pegasus:package packages/pegasus-server-<version>-<sha>-<platform>-release.tar.gz
      ($pack_server_hint)")
elif [[ $package != /* && ! -f $project_dir/$package ]] || [[ $package == /* && ! -f $package ]]; then
  todo+=("the server package $package: no such file; put your pack_server tarball there (packages/ is ignored by git), or point pegasus:package at it
      ($pack_server_hint)")
fi
config pegasus:clusterName >/dev/null || todo+=("a cluster name: pulumi config set pegasus:clusterName <letters, digits, _>")

if ((${#todo[@]})); then
  say "stack $stack needs a few decisions before pulumi up:"
  for item in "${todo[@]}"; do printf '  - %s\n' "$item"; done
  say "then run the same make command again."
  exit 1
fi
