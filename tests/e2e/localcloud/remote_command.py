"""pulumi-command's remote provider, re-enacted over real SSH (pulumi_command 1.2.1).

Checked against pulumi/pulumi-command v1.2.1 (provider/pkg/provider/remote):
- dialing retries until `dialErrorLimit` failed attempts (default 10; -1 = no
  limit), each attempt bounded by `perDialTimeout` seconds (default 15), with a
  growing pause between attempts; `proxy` dials the bastion first and tunnels;
- `hostKey` (connection.go, SSHConfig): absent, any host key is accepted
  (ssh.InsecureIgnoreHostKey); given, it is parsed as an authorized_keys line
  ("failed to parse host key" otherwise), only its algorithm is offered
  (HostKeyAlgorithms = [key.Type()]) and the server's key must be that one
  (ssh.FixedHostKey): a different one fails the handshake with
  `ssh: handshake failed: ssh: host key mismatch`, and like any dial error it is
  retried up to the limit; the proxy's `hostKey` works the same for the bastion;
- one SSH session per run; each `environment` entry is an "env" request that
  wants a reply: a server that refuses it (sshd without a matching `AcceptEnv`)
  fails the command before it runs, with `could not set environment variable`;
  PULUMI_COMMAND_STDOUT/STDERR (previous outputs, when `addPreviousOutputInEnv`
  is not false) are attempted too, but a refusal only warns;
- `stdin` is fed when given; a non-zero exit fails with
  `Process exited with status N: running "<script>":\\n<stdout and stderr>`;
- stdout and stderr outputs lose one trailing newline.
CopyToRemote: SFTP; a StringAsset is written to `remotePath` (parents made);
a FileAsset is copied to `remotePath`, or into it when it is a directory; a
FileArchive of a directory is copied as `remotePath/<dir name>` (contents only
when the path ends with '/').
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import posixpath
import socket
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko
from paramiko.common import cMSG_CHANNEL_REQUEST
from paramiko.message import Message

from tools.localcloud.ssh import load_private_key

PREVIOUS_STDOUT = "PULUMI_COMMAND_STDOUT"
PREVIOUS_STDERR = "PULUMI_COMMAND_STDERR"


class RemoteCommandError(Exception):
    """A remote command or copy failed; the message reads like the provider's."""


class HandshakeFailed(paramiko.SSHException):
    """The SSH handshake failed, in golang.org/x/crypto/ssh's words."""


def parse_host_key(line: str) -> paramiko.PKey:
    """`hostKey` as ssh.ParseAuthorizedKey reads it: `<type> <base64> [comment]`."""
    try:
        kind, blob = line.split()[:2]
        return paramiko.PKey.from_type_string(kind, base64.b64decode(blob, validate=True))
    except (ValueError, paramiko.SSHException, binascii.Error) as error:
        raise RemoteCommandError(f"failed to parse host key: ssh: no key found ({error})") from error


@dataclass
class Connection:
    host: str
    user: str = "root"
    port: int = 22
    private_key: str | None = None
    password: str | None = None
    dial_error_limit: int = 10
    per_dial_timeout: int = 15
    host_key: str | None = None
    proxy: "Connection | None" = None

    @classmethod
    def from_inputs(cls, value: dict) -> "Connection":
        if not value or not value.get("host"):
            raise RemoteCommandError("connection.host is required")
        proxy = value.get("proxy")
        return cls(
            host=value["host"],
            user=value.get("user") or "root",
            port=int(value.get("port") or 22),
            private_key=value.get("privateKey"),
            password=value.get("password"),
            dial_error_limit=int(_default(value.get("dialErrorLimit"), 10)),
            per_dial_timeout=int(_default(value.get("perDialTimeout"), 15)),
            host_key=value.get("hostKey") or None,
            proxy=cls.from_inputs(proxy) if proxy else None,
        )

    def _open(self, sock=None) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        disabled: dict[str, list[str]] = {}
        if self.host_key is None:
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # no hostKey: ignored
        else:
            expected = parse_host_key(self.host_key)
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            name = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
            client.get_host_keys().add(name, expected.get_name(), expected)
            disabled["keys"] = [k for k in paramiko.Transport._preferred_keys if k != expected.get_name()]
        try:
            client.connect(
                self.host, port=self.port, username=self.user,
                pkey=load_private_key(self.private_key) if self.private_key else None,
                password=self.password, sock=sock,
                timeout=self.per_dial_timeout or None, banner_timeout=self.per_dial_timeout or None,
                auth_timeout=self.per_dial_timeout or None, allow_agent=False, look_for_keys=False,
                disabled_algorithms=disabled or None,
            )
        except paramiko.BadHostKeyException as error:
            client.close()
            raise HandshakeFailed("ssh: handshake failed: ssh: host key mismatch") from error
        except paramiko.SSHException as error:
            client.close()
            if "no acceptable host key" in str(error):
                raise HandshakeFailed("ssh: handshake failed: ssh: no common algorithm for host key; "
                                      f"client offered: [{expected.get_name()}]") from error
            raise
        return client

    def dial(self) -> tuple[paramiko.SSHClient, list[paramiko.SSHClient]]:
        """Connect (through the proxy if any); return the client and what to close."""
        closers: list[paramiko.SSHClient] = []
        sock = None
        if self.proxy is not None:
            bastion = _with_retries("Dial proxy", self.proxy.dial_error_limit,
                                    lambda: self.proxy._open())
            closers.append(bastion)
            transport = bastion.get_transport()
            sock = _with_retries("Dial from proxy", self.dial_error_limit,
                                 lambda: transport.open_channel(
                                     "direct-tcpip", (self.host, self.port), ("127.0.0.1", 0)))
        client = _with_retries("Dial", self.dial_error_limit, lambda: self._open(sock))
        closers.insert(0, client)
        return client, closers


def _default(value, default):
    return default if value is None else value


def _with_retries(what: str, limit: int, attempt):
    delay, failures = 0.1, 0
    while True:
        try:
            return attempt()
        except (OSError, socket.timeout, paramiko.SSHException, EOFError) as error:
            failures += 1
            if limit != -1 and failures > limit:
                raise RemoteCommandError(f"{what}: after {failures - 1} failed attempts: {error}") from error
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)


def _setenv(channel: paramiko.Channel, name: str, value: str, want_reply: bool) -> None:
    """Send an "env" request. With want_reply, a refusal raises (and closes the channel),
    as Go's session.Setenv reports it; without, sshd drops refused ones silently."""
    if not want_reply:
        channel.set_environment_variable(name, value)
        return
    message = Message()
    message.add_byte(cMSG_CHANNEL_REQUEST)
    message.add_int(channel.remote_chanid)
    message.add_string("env")
    message.add_boolean(True)
    message.add_string(name)
    message.add_string(value)
    channel._event_pending()
    channel.transport._send_user_message(message)
    try:
        channel._wait_for_event()
    except paramiko.SSHException as error:
        raise RemoteCommandError(
            f"could not set environment variable {name!r}: ssh: setenv failed "
            "(the SSH server accepts only the variables its AcceptEnv names)"
        ) from error


def run_remote(connection: Connection, script: str, *, environment: dict | None = None,
               stdin: str | None = None, previous: tuple[str, str] | None = None,
               timeout: float | None = None) -> tuple[str, str]:
    """Run `script` as pulumi-command does; return (stdout, stderr), trimmed."""
    client, closers = connection.dial()
    try:
        channel = client.get_transport().open_session()
        for name, value in (environment or {}).items():
            _setenv(channel, name, str(value), want_reply=True)
        if previous is not None:
            for name, value in zip((PREVIOUS_STDOUT, PREVIOUS_STDERR), previous):
                if value:
                    _setenv(channel, name, value, want_reply=False)
        channel.settimeout(timeout)
        channel.exec_command(script)
        if stdin:
            channel.sendall(stdin.encode())
        channel.shutdown_write()
        stdout, stderr, combined = _collect(channel)
        status = channel.recv_exit_status()
    finally:
        for closer in closers:
            closer.close()
    if status != 0:
        raise RemoteCommandError(
            f"Process exited with status {status}: running {json.dumps(script)}:\n{combined}"
        )
    return _trim(stdout), _trim(stderr)


def _collect(channel: paramiko.Channel) -> tuple[str, str, str]:
    out, err, both = bytearray(), bytearray(), bytearray()
    while True:
        got = False
        if channel.recv_ready():
            chunk = channel.recv(65536)
            out += chunk
            both += chunk
            got = True
        if channel.recv_stderr_ready():
            chunk = channel.recv_stderr(65536)
            err += chunk
            both += chunk
            got = True
        if not got:
            if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                break
            time.sleep(0.01)
    decode = lambda b: bytes(b).decode(errors="replace")  # noqa: E731
    return decode(out), decode(err), decode(both)


def _trim(text: str) -> str:
    return text[:-1] if text.endswith("\n") else text


# -- CopyToRemote -------------------------------------------------------------

# Every CopyToRemote of this process: (host, remote path, bytes of the source), so a test
# can tell what crossed the SSH upload path (the package should not, with the store).
COPIED: list[tuple[str, str, int]] = []


def _source_bytes(source: dict) -> int:
    if source.get("__asset") == "string":
        return len(source["text"].encode())
    path = Path(source.get("path", ""))
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def copy_to_remote(connection: Connection, source: dict, remote_path: str) -> None:
    """Copy a normalized source ({"__asset": "string"|"file", ...} or
    {"__archive": "file", ...}) to `remote_path` over SFTP."""
    COPIED.append((connection.host, remote_path, _source_bytes(source)))
    client, closers = connection.dial()
    try:
        sftp = client.open_sftp()
        try:
            if source.get("__asset") == "string":
                _copy_text(sftp, source["text"], remote_path)
            elif source.get("__asset") == "file":
                _copy_file(sftp, Path(source["path"]), remote_path)
            elif source.get("__archive") == "file":
                _copy_tree(sftp, source["path"], remote_path)
            else:
                raise RemoteCommandError(
                    f"CopyToRemote source {source.get('__asset') or source.get('__archive')!r} "
                    "is not supported: use a FileAsset, StringAsset or FileArchive"
                )
        finally:
            sftp.close()
    finally:
        for closer in closers:
            closer.close()


def _remote_stat(sftp: paramiko.SFTPClient, path: str):
    try:
        return sftp.stat(path)
    except FileNotFoundError:
        return None


def _mkdir_all(sftp: paramiko.SFTPClient, path: str) -> None:
    if not path or path == "/" or _remote_stat(sftp, path) is not None:
        return
    _mkdir_all(sftp, posixpath.dirname(path.rstrip("/")))
    sftp.mkdir(path)


def _copy_text(sftp, text: str, dest: str) -> None:
    existing = _remote_stat(sftp, dest)
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise RemoteCommandError(
            f"remote path {dest} is a directory; when using a text asset, remotePath must be a file path")
    _mkdir_all(sftp, posixpath.dirname(dest))
    with sftp.open(dest, "w") as handle:
        handle.write(text.encode())


def _copy_file(sftp, source: Path, dest: str) -> None:
    existing = _remote_stat(sftp, dest)
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        dest = posixpath.join(dest, source.name)
    elif existing is None:
        _mkdir_all(sftp, posixpath.dirname(dest))
    sftp.put(str(source), dest)
    sftp.chmod(dest, stat.S_IMODE(os.stat(source).st_mode))


def _copy_tree(sftp, source_text: str, dest: str) -> None:
    source = Path(source_text)
    if not source.is_dir():
        raise RemoteCommandError(f"FileArchive {source} must be a local directory here")
    existing = _remote_stat(sftp, dest)
    if existing is not None and not stat.S_ISDIR(existing.st_mode):
        raise RemoteCommandError(f"remote path {dest} exists but is not a directory")
    _mkdir_all(sftp, dest)
    if not source_text.endswith("/"):
        dest = posixpath.join(dest, source.name)
        _mkdir_all(sftp, dest)
    for directory, subdirs, files in os.walk(source):
        relative = os.path.relpath(directory, source)
        target = dest if relative == "." else posixpath.join(dest, relative)
        _mkdir_all(sftp, target)
        for name in files:
            _copy_file_exact(sftp, Path(directory) / name, posixpath.join(target, name))


def _copy_file_exact(sftp, source: Path, dest: str) -> None:
    sftp.put(str(source), dest)
    sftp.chmod(dest, stat.S_IMODE(os.stat(source).st_mode))
