"""The package fetch (templates/fetch_package.sh.j2), run for real with this machine's curl
against a local stand-in for the instance metadata service and S3.

The stand-in answers as the real ones do for what the script uses: IMDSv2
(a PUT for a token, then the role's name and credentials, 401 without the
token), and S3's GetObject with its XML errors. It checks that each S3
request is signed with SigV4 by the role's key and carries the session token
and the payload hash S3 requires.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import subprocess
import threading
from pathlib import Path

import pytest

from components.render import templates
from tests.support.package_builder import build_package
from tests.unit.host_contexts import RELEASE
from tests.unit.script_runner import run_script

ROLE = "c1-server-role-0a1b2c3"
ACCESS_KEY = "ASIATESTACCESSKEY000"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLETOKEN+/="
IMDS_TOKEN = "imds-token-1"
KEY = f"packages/{'0' * 64}/{RELEASE}.tar.gz"


class FakeAws:
    """IMDSv2 and one S3 object on one local HTTP server. `s3_answers` is consumed one
    per GetObject, the last one repeated: (status, body)."""

    def __init__(self) -> None:
        self.body = b""
        self.s3_answers: list[tuple[int, bytes]] = []
        self.s3_requests: list[dict[str, str]] = []
        self.role: str | None = ROLE
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self):  # noqa: N802
                if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    self._send(200, IMDS_TOKEN.encode())
                else:
                    self._send(400, b"")

            def do_GET(self):  # noqa: N802
                if self.path.startswith("/latest/"):
                    # IMDSv2 required: no token, no answer (EC2 User Guide, "Use IMDSv2").
                    if self.headers.get("X-aws-ec2-metadata-token") != IMDS_TOKEN:
                        return self._send(401, b"")
                    base = "/latest/meta-data/iam/security-credentials/"
                    if self.path == base and fake.role:
                        return self._send(200, fake.role.encode())
                    if fake.role and self.path == base + fake.role:
                        return self._send(200, json.dumps({
                            "Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": ACCESS_KEY,
                            "SecretAccessKey": "secret/with+chars=", "Token": SESSION_TOKEN,
                            "Expiration": "2099-01-01T00:00:00Z"}).encode())
                    return self._send(404, b"")
                fake.s3_requests.append({k.lower(): v for k, v in self.headers.items()} | {"path": self.path})
                status, body = fake.s3_answers.pop(0) if len(fake.s3_answers) > 1 else fake.s3_answers[0]
                self._send(status, body)

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def s3_error(code: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>m</Message></Error>'.encode()


@pytest.fixture
def aws():
    fake = FakeAws()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return build_package(tmp_path_factory.mktemp("pkg"), server="placeholder")


def contexts(tmp_path: Path, aws: FakeAws, package: Path) -> tuple[dict, dict]:
    """(fetch context, install context) for a host whose appDir is under tmp_path."""
    sha = hashlib.sha256(package.read_bytes()).hexdigest()
    tarball = tmp_path / "packages" / package.name
    fetch = {"host": "replica-0 (i-0123456789abcdef0)", "tarball": str(tarball), "sha256": sha,
             "url": f"{aws.base}/{KEY}", "object": f"s3://bucket/{KEY}", "region": "eu-west-1",
             "metadata_url": aws.base, "attempts": 3, "retry_seconds": 0,
             "permission": "s3:GetObject on arn:aws:s3:::bucket/packages/*"}
    install = {"tarball": str(tarball), "sha256": sha, "release": f"{package.name[:-7]}-{sha[:12]}",
               "releases_dir": str(tmp_path / "releases"), "current_link": str(tmp_path / "current"),
               "needs_jvm": False, "jvm_root": "/nonexistent", "jvm_lib_link": str(tmp_path / "jvm-lib"),
               "jvm_home_link": str(tmp_path / "jvm-home")}
    return fetch, install


def fetch_and_install(tmp_path: Path, fetch: dict, install: dict) -> subprocess.CompletedProcess:
    # As server_files.fetch_and_install_package_script puts them together: one shell.
    script = templates.render("fetch_package.sh", **fetch) + templates.render("install_package.sh", **install)
    return run_script(script, tmp_path, timeout=120)


def test_fetches_with_the_roles_signed_request_and_installs(tmp_path, aws, package):
    fetch, install = contexts(tmp_path, aws, package)
    aws.s3_answers = [(200, package.read_bytes())]
    result = fetch_and_install(tmp_path, fetch, install)
    assert result.returncode == 0, result.stderr
    assert "fetched s3://bucket/" in result.stdout and "(sha256 checked)" in result.stdout
    assert Path(install["current_link"]).resolve().name == install["release"]
    [request] = aws.s3_requests
    assert request["path"] == f"/{KEY}"
    # SigV4 by the role's key for S3 in the region, the session token, the payload hash S3 requires.
    assert request["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")
    assert "/eu-west-1/s3/aws4_request" in request["authorization"]
    assert "x-amz-security-token" in request["authorization"]  # signed, not only sent
    assert request["x-amz-security-token"] == SESSION_TOKEN
    assert request["x-amz-content-sha256"] == hashlib.sha256(b"").hexdigest()
    # A rerun (a new connection, the same package) finds it and reads nothing.
    again = fetch_and_install(tmp_path, fetch, install)
    assert again.returncode == 0 and "is already here" in again.stdout
    assert len(aws.s3_requests) == 1


def test_a_wrong_sha256_is_refused_and_nothing_installed(tmp_path, aws, package):
    fetch, install = contexts(tmp_path, aws, package)
    other = build_package(tmp_path / "other", version="2.5.1", git_sha="1234abc", server="placeholder")
    aws.s3_answers = [(200, other.read_bytes())]
    result = fetch_and_install(tmp_path, fetch, install)
    assert result.returncode == 1
    actual = hashlib.sha256(other.read_bytes()).hexdigest()
    assert (f"fetch-package: ERROR on replica-0 (i-0123456789abcdef0): s3://bucket/{KEY} has sha256 {actual}, "
            f"the stack expects {fetch['sha256']}") in result.stderr
    assert "nothing was installed" in result.stderr and "--replace" in result.stderr
    assert len(aws.s3_requests) == 1  # a wrong object is not fetched again and again
    packages = tmp_path / "packages"
    assert not list(packages.iterdir()), "the wrong bytes stayed on the host"
    assert not (tmp_path / "releases").exists() and not (tmp_path / "current").exists()
    assert "install-package" not in result.stdout


def test_transient_failures_are_retried_within_a_bound(tmp_path, aws, package):
    fetch, install = contexts(tmp_path, aws, package)
    aws.s3_answers = [(503, s3_error("SlowDown")), (500, s3_error("InternalError")), (200, package.read_bytes())]
    result = fetch_and_install(tmp_path, fetch, install)
    assert result.returncode == 0, result.stderr
    assert len(aws.s3_requests) == 3
    assert f"attempt 1 of 3: {aws.base}/{KEY} answered HTTP 503 SlowDown (role {ROLE})" in result.stdout
    assert "attempt 2 of 3:" in result.stdout and "HTTP 500 InternalError" in result.stdout
    assert Path(fetch["tarball"]).read_bytes() == package.read_bytes()


def test_a_denied_read_fails_after_the_last_attempt_saying_what_to_check(tmp_path, aws, package):
    fetch, install = contexts(tmp_path, aws, package)
    aws.s3_answers = [(403, s3_error("AccessDenied"))]
    result = fetch_and_install(tmp_path, fetch, install)
    assert result.returncode == 1
    assert len(aws.s3_requests) == 3  # bounded: `attempts`, no more
    error = result.stderr
    assert error.startswith("fetch-package: ERROR on replica-0 (i-0123456789abcdef0): could not fetch the server "
                            f"package s3://bucket/{KEY} ({aws.base}/{KEY}) after 3 attempts: ")
    assert f"answered HTTP 403 AccessDenied (role {ROLE})" in error
    for hint in ("S3 gateway endpoint", "route table", "instance profile",
                 "s3:GetObject on arn:aws:s3:::bucket/packages/*", "bucket policy", "packageDelivery: upload"):
        assert hint in error, hint
    assert not list((tmp_path / "packages").iterdir())


def test_an_instance_without_a_role_is_named_as_such(tmp_path, aws, package):
    fetch, install = contexts(tmp_path, aws, package)
    aws.role = None
    aws.s3_answers = [(200, package.read_bytes())]
    result = fetch_and_install(tmp_path, fetch, install)
    assert result.returncode == 1
    assert "this instance has no role (no instance profile attached, or not yet visible)" in result.stderr
    assert "404" in result.stderr and aws.s3_requests == []


def test_the_credentials_never_reach_a_command_line():
    script = templates.render("fetch_package.sh", **{
        "host": "h", "tarball": "/t.tar.gz", "sha256": "ab" * 32, "url": "https://b.s3.r.amazonaws.com/k",
        "object": "s3://b/k", "region": "r", "metadata_url": "http://169.254.169.254", "attempts": 1,
        "retry_seconds": 1, "permission": "p"})
    assert "--user" not in script and " -u " not in script
    assert "-K -" in script  # curl reads them from its config on stdin


def test_the_remote_command_is_the_fetch_then_the_install(package):
    from components.render import server_files
    from components.spec.validation import build_spec
    raw = {"clusterName": "c1", "package": str(package),
           "ssh": {"privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n", "publicKey": "ssh-ed25519 AAAAC3Nz me"},
           "network": {"adminCidr": "203.0.113.0/24"}}
    spec = build_spec(raw, stack="dev", secret_keys={"pegasus:ssh"})
    text = server_files.fetch_and_install_package_script(spec, "replica-0 (i-1)", "pegasus-c1-x", "eu-west-1",
                                                        "packages/k/p.tar.gz")
    assert text.index("fetch-package") < text.index("install-package")
    assert "url=https://pegasus-c1-x.s3.eu-west-1.amazonaws.com/packages/k/p.tar.gz" in text
    assert "metadata_url=http://169.254.169.254" in text
