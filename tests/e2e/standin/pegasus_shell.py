#!/usr/bin/env python3
"""pegasus_shell stand-in: a test double of the admin shell of a `pack_tools` package.

The tools package builder (tests/support/package_builder.py) ships this file as
`bin/pegasus_shell/pegasus_shell` and stamps RELEASE. It is what `./run.sh shell`
runs (run.sh, v2.5.0: `./pegasus_shell <config> <cluster name>`, the config made
from src/shell/config.ini). It reads commands from stdin, one a line, until EOF,
and prints what the real shell prints for the commands the rolling update and the
offline procedure use (apache/incubator-pegasus v2.5.0, file named at each one):

  cluster_info                   src/client/replication_ddl_client.cpp cluster_info
  nodes [-d]                     src/shell/commands/node_management.cpp ls_nodes
  ls [-d]                        replication_ddl_client.cpp list_apps
  app <name> [-d]                replication_ddl_client.cpp list_app
  set_meta_level L, get_meta_level   src/shell/commands/rebalance.cpp
  balance -g A.P -p move_pri|copy_pri|copy_sec -f IP:PORT -t IP:PORT   rebalance.cpp balance
  propose [-f] -g A.P -p TYPE -t IP:PORT -n IP:PORT                   rebalance.cpp propose
  remote_command [-t all|meta-server|replica-server | -l IP:PORT,...] CMD [ARG...]
                                 node_management.cpp remote_command (its report on stderr)
Tables as src/utils/output_utils.cpp writes them (kTabular). Any other command
is refused as an unknown one; options are parsed with GNU getopt like upstream,
and a command whose arguments do not parse prints its USAGE line.

Stamped with a 2.6 release it speaks master's shell instead (same files at HEAD):
nodes are host_port, so `balance`, `propose` and `remote_command -l` take any
HOST:PORT whose host resolves to an IPv4 address here (host_port::from_string,
src/rpc/rpc_host_port.cpp), names or IPs, and pass it on as written (the
MetaServer then matches names); `remote_command` parses its options as argh
does and prints one JSON report on stdout (nlohmann dump(2), keys sorted,
each node's answer parsed as JSON when it is JSON); `ls` has the
atomic_idempotent column; refusals print `ERROR: ...` on stderr.

It acts on the pegasus_server stand-in (pegasus_server.py) over HTTP: reads on
the MetaServers' /meta/ pages, operations on their /standin/ endpoints (standing
for the RPCs). It needs what the real binary needs: its config file, the cluster
in [pegasus.clusters], and the package's lib/ on LD_LIBRARY_PATH.
"""

from __future__ import annotations

import getopt
import http.client
import ipaddress
import json
import os
import shlex
import socket
import sys
from urllib.parse import quote, urlsplit

RELEASE = "2.5.0"  # stamped by tests/support/package_builder.py
MASTER = tuple(int(x) for x in RELEASE.split(".")[:2]) >= (2, 6)
LIBRARY = "libpegasus_standin.so"  # stands for the libraries pack_tools puts in lib/
LEVELS = ("stopped", "blind", "freezed", "steady", "lively")
# config_type names (idl/meta_admin.thrift) that `propose -p` accepts after "CT_"
CONFIG_TYPES = ("ASSIGN_PRIMARY", "UPGRADE_TO_PRIMARY", "ADD_SECONDARY", "UPGRADE_TO_SECONDARY",
                "DOWNGRADE_TO_SECONDARY", "DOWNGRADE_TO_INACTIVE", "REMOVE", "ADD_SECONDARY_FOR_LB",
                "PRIMARY_FORCE_UPDATE_BALLOT", "DROP_PARTITION", "REGISTER_CHILD")
USAGES = {
    "cluster_info": "[-r|--resolve_ip] [-o|--output file_name] [-j|--json]",
    "app": "<app_name> [-d|--detailed] [-r|--resolve_ip] [-o|--output file_name] [-j|--json]",
    "ls": "[-a|-all] [-d|--detailed] [-j|--json] [-o|--output file_name]"
          "[-s|--status all|available|creating|dropping|dropped]",
    "nodes": "[-d|--detailed] [-j|--json] [-r|--resolve_ip] [-u|--resource_usage]"
             "[-o|--output file_name] [-s|--status all|alive|unalive] [-q|--qps]",
    "set_meta_level": "<stopped|blind|freezed|steady|lively>",
    "get_meta_level": "",
    "balance": "<-g|--gpid appid.pidx> <-p|--type move_pri|copy_pri|copy_sec> <-f|--from from_address> "
               "<-t|--to to_address>",
    "propose": "[-f|--force] <-g|--gpid appid.pidx> <-p|--type ASSIGN_PRIMARY|ADD_SECONDARY|"
               "DOWNGRADE_TO_INACTIVE...> <-t|--target node_to_exec_command> <-n|--node node_to_be_affected> ",
    "remote_command": "[-t all|meta-server|replica-server] [-r|--resolve_ip] [-l ip:port,ip:port...]"
                      "<command> [arguments...]",
}
if MASTER:  # src/shell/main.cpp at HEAD
    USAGES["remote_command"] = ("[-t all|meta-server|replica-server] [-r|--resolve_ip] [-l host:port,host:port...] "
                                "[-i|--sample_interval_ms num] <command> [arguments...]")


class Usage(Exception):
    """The command's arguments did not parse: the shell prints its USAGE line."""


# ---------------------------------------------------------------- output (output_utils.cpp)

def table(name: str, rows: list[list[str]], right: frozenset[int] = frozenset()) -> str:
    """Multi-column table_printer in kTabular: each column as wide as its widest
    cell plus 2; the first row holds the title and column names."""
    widths = [max(len(str(row[c])) for row in rows) + 2 for c in range(len(rows[0]))]
    lines = [f"[{name}]"]
    for row in rows:
        lines.append("".join(str(cell).rjust(w) if c in right else str(cell).ljust(w)
                             for c, (cell, w) in enumerate(zip(row, widths))))
    return "\n".join(lines) + "\n"


def pairs(name: str, items: list[tuple[str, object]]) -> str:
    """Single-column table_printer (add_row_name_and_data): `name  : value`."""
    key_width = max(len(k) for k, _ in items) + 2
    value_width = max(len(f": {v}") for _, v in items) + 2
    lines = [f"[{name}]"] + [k.ljust(key_width) + f": {v}".ljust(value_width) for k, v in items]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- talking to the MetaServers

def http_get(address: str, path: str, hops: int = 3) -> tuple[int, object]:
    """GET that follows the MetaServers' 307 redirects; (status, parsed JSON or text).
    (The stand-in's test-double endpoints stand for the RPCs the real shell sends.)"""
    for _ in range(hops + 1):
        host, port = address.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            if response.status == 307:
                location = urlsplit(response.getheader("Location", ""))
                address, path = location.netloc, location.path + (f"?{location.query}" if location.query else "")
                continue
            try:
                return response.status, json.loads(body or b"null")
            except ValueError:
                return response.status, body.decode(errors="replace")
        finally:
            conn.close()
    raise OSError(f"too many redirects for {path}")


class Cluster:
    def __init__(self, metas: list[str]):
        self.metas = metas

    def meta(self, path: str) -> object:
        """The answer of the first MetaServer that answers (the ddl client's request_meta)."""
        for meta in self.metas:
            try:
                status, body = http_get(meta, path)
            except (OSError, http.client.HTTPException):
                continue
            if status == 200:
                return body
        raise TimeoutError("ERR_TIMEOUT")

    def node(self, address: str, path: str) -> object:
        status, body = http_get(address, path)
        if status != 200:
            raise OSError(f"HTTP {status}")
        return body


def ipv4_address(text: str) -> str:
    """rpc_address::from_string_ipv4: IPv4:port only (no host names)."""
    host, sep, port = text.rpartition(":")
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        raise ValueError(text) from None
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(text)
    return text


def host_port(text: str) -> str:
    """host_port::from_string (master): HOST:PORT with a port that fits 16 bits and a host
    that resolves to IPv4 (rpc_address::ipv4_from_host: getaddrinfo, AF_INET); kept as written."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(text)
    try:
        socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise ValueError(text) from None
    return f"{host}:{int(port)}"


def node_address(text: str) -> str:
    return host_port(text) if MASTER else ipv4_address(text)


def error(message: str) -> None:
    """master's SHELL_PRINTLN_ERROR (command_helper.h): bold red `ERROR: ...` on stderr."""
    print(f"\x1b[1m\x1b[38;2;255;000;000mERROR: {message}\n\x1b[0m", end="", file=sys.stderr)


def gpid(text: str) -> tuple[int, int]:
    """gpid::parse_from: "<app_id>.<partition_index>"."""
    app, sep, pidx = text.partition(".")
    if not sep or not app.isdigit() or not pidx.isdigit():
        raise ValueError(text)
    return int(app), int(pidx)


# ---------------------------------------------------------------- commands

def cluster_info(c: Cluster, args: list[str]) -> None:
    getopt.gnu_getopt(args, "ro:j", ["resolve_ip", "output=", "json"])
    info = c.meta("/meta/cluster")
    print(pairs("cluster_info", list(info.items())), end="")


def nodes(c: Cluster, args: list[str]) -> None:
    opts, _ = getopt.gnu_getopt(args, "druqjs:o:", ["detailed", "resolve_ip", "resource_usage", "qps", "json",
                                                     "status=", "output="])
    detailed = any(o in ("-d", "--detailed") for o, _ in opts)
    page = c.meta("/meta/nodes?detail")
    header = ["address", "status"] + (["replica_count", "primary_count", "secondary_count"] if detailed else [])
    rows = [header]
    for node, row in page["details"].items():
        rows.append([node, row["status"]] + ([row["replica_count"], row["primary_count"], row["secondary_count"]]
                                              if detailed else []))
    summary = page["summary"]
    print(table("details", rows, frozenset({2, 3, 4})))
    print(pairs("summary", [(k, summary[k]) for k in ("total_node_count", "alive_node_count",
                                                      "unalive_node_count")]))


def ls(c: Cluster, args: list[str]) -> None:
    opts, _ = getopt.gnu_getopt(args, "adjs:o:", ["all", "detailed", "json", "status=", "output="])
    detailed = any(o in ("-d", "--detailed") for o, _ in opts)
    page = c.meta("/meta/apps?detail" if detailed else "/meta/apps")
    rows = [["app_id", "status", "app_name", "app_type", "partition_count", "replica_count", "is_stateful",
             "create_time", "drop_time", "drop_expire", "envs_count"] + (["atomic_idempotent"] if MASTER else [])]
    for app_id, a in page["general_info"].items():
        rows.append([app_id, a["status"], a["app_name"], a["app_type"], a["partition_count"], a["replica_count"],
                     a["is_stateful"], a["create_time"].replace(" ", "_"), a["drop_time"], a["drop_expire"],
                     a["envs_count"]] + (["false"] if MASTER else []))
    out = table("general_info", rows) + "\n"
    if detailed and page.get("healthy_info"):
        rows = [["app_id", "app_name", "partition_count", "fully_healthy", "unhealthy", "write_unhealthy",
                 "read_unhealthy"]]
        for app_id, h in page["healthy_info"].items():
            rows.append([app_id, h["app_name"], h["partition_count"], h["fully_healthy"], h["unhealthy"],
                         h["write_unhealthy"], h["read_unhealthy"]])
        out += table("healthy_info", rows) + "\n"
        summary = page["summary"]
        out += pairs("summary", list(summary.items())) + "\n"
    print(out, end="")


def app(c: Cluster, args: list[str]) -> None:
    if len(args) < 1:
        raise Usage()
    opts, _ = getopt.gnu_getopt(args[1:], "dro:j", ["detailed", "resolve_ip", "output=", "json"])
    name, detailed = args[0], any(o in ("-d", "--detailed") for o, _ in opts)
    out = pairs("parameters", [("app_name", name), ("detailed", "true" if detailed else "false")]) + "\n"
    for meta in c.metas:
        try:
            status, page = http_get(meta, f"/meta/app?name={quote(name)}&detail")
        except (OSError, http.client.HTTPException):
            continue
        break
    else:
        print(f"query app {name} failed, error=ERR_TIMEOUT")
        return
    if status == 404:
        print(f"query app {name} failed, error=ERR_OBJECT_NOT_FOUND")
        return
    g = page["general"]
    out += pairs("general", [(k, g[k]) for k in ("app_name", "app_id", "partition_count", "max_replica_count")])
    out += "\n"
    if detailed:
        rows = [["pidx", "ballot", "replica_count", "primary", "secondaries"]]
        for r in page["replicas"].values():
            rows.append([r["pidx"], r["ballot"], r["replica_count"], r["primary"], r["secondaries"]])
        out += table("replicas", rows) + "\n"
        rows = [["node", "primary", "secondary", "total"]]
        for node, n in page["nodes"].items():
            rows.append(["" if node == "total" else node, n["primary"], n["secondary"], n["total"]])
        out += table("nodes", rows) + "\n"
        h = page["healthy"]
        out += pairs("healthy", list(h.items())) + "\n"
    print(out, end="")


def set_meta_level(c: Cluster, args: list[str]) -> None:
    if len(args) < 1:
        raise Usage()
    if args[0] not in LEVELS:
        print(f"parse {args[0]} as meta function level failed")
        return
    answer = c.meta(f"/standin/control_meta?level={args[0]}")
    if answer["err"] == "ERR_OK":
        print(f"control meta level ok, the old level is {answer['old_level']}")
    else:
        print(f"control meta level got error {answer['err']}")


def get_meta_level(c: Cluster, args: list[str]) -> None:
    answer = c.meta("/standin/control_meta?level=invalid")
    print(f"current meta level is {answer['old_level']}" if answer["err"] == "ERR_OK"
          else f"get meta level got error {answer['err']}")


def send_proposal(c: Cluster, target_gpid: tuple[int, int], actions: list[tuple[str, str, str]],
                  force: bool) -> str:
    text = ",".join(f"{t}/{target}/{node}" for t, target, node in actions)
    answer = c.meta(f"/standin/propose_balancer?gpid={target_gpid[0]}.{target_gpid[1]}"
                    f"&actions={quote(text)}" + ("&force=true" if force else ""))
    return answer["err"]


def balance(c: Cluster, args: list[str]) -> None:
    if len(args) < 8:  # upstream: args.argc < 9, the command name included
        raise Usage()
    opts, _ = getopt.gnu_getopt(args, "g:p:f:t:", ["gpid=", "type=", "from=", "to="])
    values: dict[str, object] = {}
    for o, v in opts:
        key = {"-g": "gpid", "--gpid": "gpid", "-p": "type", "--type": "type", "-f": "from", "--from": "from",
               "-t": "to", "--to": "to"}[o]
        try:
            values[key] = gpid(v) if key == "gpid" else node_address(v) if key in ("from", "to") else v
        except ValueError:
            what = {"gpid": "gpid", "from": "from_host_port" if MASTER else "from_address",
                    "to": "target_address"}[key]
            print(f"parse {v} as {what} failed", file=sys.stderr)
            raise Usage() from None
    kind, source, dest = values.get("type"), values.get("from", ""), values.get("to", "")
    if kind == "move_pri":
        actions = [("DOWNGRADE_TO_SECONDARY", source, source), ("UPGRADE_TO_PRIMARY", dest, dest)]
    elif kind == "copy_pri":
        actions = [("ADD_SECONDARY_FOR_LB", source, dest), ("DOWNGRADE_TO_SECONDARY", source, source),
                   ("UPGRADE_TO_PRIMARY", dest, dest)]
    elif kind == "copy_sec":
        actions = [("ADD_SECONDARY_FOR_LB", "", dest), ("DOWNGRADE_TO_INACTIVE", "", source)]
    else:
        print(f"parse {kind} as a balance type failed", file=sys.stderr)
        raise Usage()
    for key, what in (("from", "need set from address by -f"), ("to", "need set target address by -t"),
                      ("gpid", "need set the gpid by -g")):
        if key not in values:
            print(what, file=sys.stderr)
            raise Usage()
    print(f"send balance proposal result: {send_proposal(c, values['gpid'], actions, False)}")  # type: ignore[arg-type]


def refuse(message: str) -> None:
    """A refusal before the USAGE line: verify_logged (v2.5.0 command_utils.h) or master's ERROR."""
    if MASTER:
        error(message)
    else:
        print(message, file=sys.stderr)


def propose(c: Cluster, args: list[str]) -> None:
    if len(args) < 8:  # upstream: dverify(args.argc >= 9)
        raise Usage()
    opts, _ = getopt.gnu_getopt(args, "fg:p:t:n:", ["force", "gpid=", "type=", "target=", "node="])
    force, target, node, proposal, pid = False, "", "", "CT_", None
    for o, v in opts:
        if o in ("-f", "--force"):
            force = True
        elif o in ("-p", "--type"):
            proposal += v
        elif o in ("-g", "--gpid"):
            try:
                pid = gpid(v)
            except ValueError:
                refuse(f"parse {v} as gpid failed")
                raise Usage() from None
        elif o in ("-t", "--target"):
            try:
                target = node_address(v)
            except ValueError:
                refuse(f"parse {v} as {'target_host_port' if MASTER else 'target_address'} failed")
                raise Usage() from None
        else:
            try:
                node = node_address(v)
            except ValueError:
                node = ""
                if not MASTER or not target:  # master tests `target` here (rebalance.cpp at HEAD)
                    refuse(f"parse {v}  as node failed" if MASTER else f"parse {v} as node failed")
                    raise Usage() from None
    for ok, what in ((target, "need set target by -t"), (node, "need set node by -n"), (pid, "need set gpid by -g")):
        if not ok:
            refuse(what)
            raise Usage()
    if proposal.removeprefix("CT_") not in CONFIG_TYPES:
        refuse(f"parse {proposal} as config_type failed." + ("\n" if MASTER else ""))
        raise Usage()
    print(f"send proposal response: {send_proposal(c, pid, [(proposal.removeprefix('CT_'), target, node)], force)}")  # type: ignore[arg-type]


def remote_command(c: Cluster, args: list[str]) -> None:
    if MASTER:
        remote_command_master(c, args)
        return
    try:
        opts, rest = getopt.getopt(args, "t:l:r", ["node_type=", "node_list=", "resolve_ip"])
    except getopt.GetoptError:
        raise Usage() from None
    kind = next((v for o, v in opts if o in ("-t", "--node_type")), "")
    node_list = next((v for o, v in opts if o in ("-l", "--node_list")), "")
    if kind and node_list:
        print("can not specify both node_type and node_list", file=sys.stderr)
        raise Usage()
    if not kind and not node_list:
        kind = "all"
    if kind and kind not in ("all", "meta-server", "replica-server"):
        print("invalid type, should be: all | meta-server | replica-server", file=sys.stderr)
        raise Usage()
    if not rest:
        print("command not specified", file=sys.stderr)
        raise Usage()
    if kind:
        targets = []
        if kind in ("all", "meta-server"):
            targets += [("meta-server", m) for m in c.metas]
        if kind in ("all", "replica-server"):
            targets += [("replica-server", n) for n, r in c.meta("/meta/nodes")["details"].items()
                        if r["status"] == "ALIVE"]
    else:
        targets = []
        for token in [t for t in node_list.split(",") if t]:
            try:
                targets.append(("user-specified", ipv4_address(token)))
            except ValueError:
                print(f"parse {token} as a ip:port node failed", file=sys.stderr)
                return
        if not targets:
            print("can't parse node from node_list", file=sys.stderr)
            return
    cmd, cmd_args = rest[0], rest[1:]
    print("COMMAND: " + " ".join([cmd, *cmd_args]) + "\n", file=sys.stderr)
    succeeded = failed = 0
    query = f"cmd={quote(cmd)}" + "".join(f"&arg={quote(a)}" for a in cmd_args)
    for desc, address in targets:
        try:
            answer = c.node(address, f"/standin/remote_command?{query}")
            ok, result = True, answer["result"]
        except (OSError, http.client.HTTPException, KeyError, TypeError):
            ok, result = False, "ERR_NETWORK_FAILURE"
        print(f"CALL [{desc}] [{address}] {'succeed' if ok else 'failed'}: {result}", file=sys.stderr)
        succeeded, failed = succeeded + ok, failed + (not ok)
    print(f"\nSucceed count: {succeeded}\nFailed count: {failed}", file=sys.stderr)


def argh_parse(args: list[str]) -> tuple[dict[str, str | None], list[str]]:
    """argh::parser with PREFER_PARAM_FOR_UNREG_OPTION (src/shell/argh.h): `-x value` is a
    parameter, a dash word followed by another dash word (or nothing) a flag, the rest positional."""
    def is_option(word: str) -> bool:
        return word.startswith("-") and len(word) > 1 and not word.lstrip("-").replace(".", "", 1).isdigit()
    params: dict[str, str | None] = {}
    positional, i = [], 0
    while i < len(args):
        if is_option(args[i]):
            if i + 1 < len(args) and not is_option(args[i + 1]):
                params[args[i].lstrip("-")] = args[i + 1]
                i += 2
                continue
            params[args[i].lstrip("-")] = None
        else:
            positional.append(args[i])
        i += 1
    return params, positional


def as_json_if_json(text: str) -> object:
    """nlohmann::json::parse, or the text itself when it is no JSON (remote_command at HEAD)."""
    def no_constants(name: str) -> object:
        raise ValueError(name)
    try:
        return json.loads(text, parse_constant=no_constants)
    except ValueError:
        return text


def remote_command_master(c: Cluster, args: list[str]) -> None:
    """node_management.cpp remote_command at HEAD."""
    params, positional = argh_parse(args)
    positional = [p for p in positional if p != "remote_command"]
    if not positional:
        error("missing <command>")
        raise Usage()
    command = {"server_info": "server-info", "flush_log": "flush-log"}.get(positional[0], positional[0])
    pos_args = positional[1:]
    kind = params.get("t") or ""
    listed = [n for n in (params.get("l") or "").split(",") if n]
    if kind and listed:
        error("can not specify both node_type and nodes_str")
        raise Usage()
    kind = kind or ("" if listed else "all")
    if kind and kind not in ("all", "meta-server", "replica-server"):
        error("invalid node_type, should be in [all, meta-server, replica-server]")
        raise Usage()
    targets = []
    if kind:
        if kind in ("all", "meta-server"):
            targets += [("meta-server", m) for m in c.metas]
        if kind in ("all", "replica-server"):
            targets += [("replica-server", n) for n, r in c.meta("/meta/nodes")["details"].items()
                        if r["status"] == "ALIVE"]
    for token in listed:
        try:
            targets.append(("user-specified", host_port(token)))
        except ValueError:
            error(f"parse '{token}' as host:port failed")
            raise Usage() from None
    interval = params.get("i", params.get("sample_interval_ms")) or "1000"
    if not interval.isdigit():
        error(f"invalid command, '{interval}' should be an unsigned integer")
        raise Usage()
    info: dict[str, object] = {"command": f"{command} {' '.join(pos_args)}"}
    details, succeeded = {}, 0
    query = f"cmd={quote(command)}" + "".join(f"&arg={quote(a)}" for a in pos_args)
    for desc, address in targets:
        try:
            ok, result = True, c.node(address, f"/standin/remote_command?{query}")["result"]
        except (OSError, http.client.HTTPException, KeyError, TypeError) as e:
            ok, result = False, f"ERR_NETWORK_FAILURE: {e}"
        details[address] = {"acked": ok, "message": as_json_if_json(result), "role": desc}
        succeeded += ok
    if details:
        info["details"] = details
    info.update(succeed_count=succeeded, failed_count=len(targets) - succeeded)
    print(json.dumps(info, indent=2, sort_keys=True, ensure_ascii=False))


COMMANDS = {"cluster_info": cluster_info, "nodes": nodes, "ls": ls, "app": app, "set_meta_level": set_meta_level,
            "get_meta_level": get_meta_level, "balance": balance, "propose": propose,
            "remote_command": remote_command}


# ---------------------------------------------------------------- main (src/shell/main.cpp)

def read_clusters(path: str) -> dict[str, str]:
    """[pegasus.clusters] of the shell's config.ini (name = ip:port,ip:port)."""
    clusters, section = {}, None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split(";", 1)[0].split("#", 1)[0].strip()
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1].strip()
            elif section == "pegasus.clusters" and "=" in line:
                key, _, value = line.partition("=")
                clusters[key.strip()] = value.strip()
    return clusters


def main(argv: list[str]) -> int:
    print(f"Pegasus Shell {RELEASE}\nType \"help\" for more information.\n"
          "Type \"Ctrl-D\" or \"Ctrl-C\" to exit the shell.\n")
    config = argv[1] if len(argv) > 1 else "config.ini"
    libraries = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    if not any(os.path.isfile(os.path.join(d, LIBRARY)) for d in libraries):
        print(f"{argv[0]}: error while loading shared libraries: {LIBRARY}: cannot open shared object file: "
              "No such file or directory", file=sys.stderr)
        return 127
    try:
        clusters = read_clusters(config)
    except OSError:
        print(f"ERROR: init pegasus failed: {config}")
        return 255
    print(f"The config file is: {config}")
    name = argv[2] if len(argv) > 2 else "mycluster"
    server_list = clusters.get(name, "")
    print(f"The cluster name is: {name}\nThe cluster meta list is: {server_list}")
    cluster = Cluster([m for m in server_list.split(",") if m])
    for line in sys.stdin:  # args.h scanfCommand: EOF ends the shell (dsn_exit(0))
        if line.rstrip("\n") == "":
            print("Invalid argument(s)")  # an empty line parses to nothing (main.cpp run)
            continue
        try:
            words = shlex.split(line)
        except ValueError:
            print("Invalid argument(s)")
            continue
        if not words:
            continue
        command = COMMANDS.get(words[0])
        if command is None:
            print(f"ERROR: invalid subcommand '{words[0]}'")
            continue
        try:
            command(cluster, words[1:])
        except (Usage, getopt.GetoptError):
            print(f"USAGE: \t{words[0]}  {USAGES[words[0]]}")
        except TimeoutError as e:
            print(f"{words[0]} failed, error={e}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
