"""The instance metadata service (IMDS) at 169.254.169.254, as the program's instances require it.

Modelled on the EC2 User Guide:
- "Use the Instance Metadata Service to access instance metadata" and "Retrieve
  instance metadata" (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html):
  IMDSv2 is a session: `PUT /latest/api/token` with
  `X-aws-ec2-metadata-token-ttl-seconds` (1 to 21600, else 400) returns a
  token; a GET must carry it in `X-aws-ec2-metadata-token`, else 401 (the
  instances set http_tokens = required); a PUT with `X-Forwarded-For` is
  refused; a token is good only on the instance that asked for it.
- "Retrieve security credentials from instance metadata"
  (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instance-metadata-security-credentials.html):
  `/latest/meta-data/iam/security-credentials/` lists the role of the
  instance's profile (404 without one); `.../<role name>` answers JSON with
  Code, LastUpdated, Type (AWS-HMAC), AccessKeyId, SecretAccessKey, Token and
  Expiration: temporary credentials of the role, which EC2 gets by assuming
  it, so the role's trust policy must let ec2.amazonaws.com assume it.

One server for the whole cloud, on the bridge's address; each machine reaches
it at 169.254.169.254:80 through a DNAT rule in its own namespace
(vpc_routes.py) and is told apart by its source address. The instance's
profile comes from the stack (the Instance resource's `iamInstanceProfile`),
the profile's role and the role's trust policy from IAM (moto), the
credentials from STS (moto), so S3 judges them by the role's policies.

- "Work with instance user data" (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-add-user-data.html):
  `/latest/user-data` returns the instance's user data as it was given
  (application/octet-stream), 404 when it has none. Any process on the
  instance may read it: host keys given there are readable by local users.

Not modelled: the other metadata categories (only instance-id), hop limits,
IMDSv1 (refused, as the instances require v2), credential rotation before
expiry (new ones are handed out once the old ones are within 5 minutes of it).
"""

from __future__ import annotations

import datetime
import http.server
import json
import secrets
import threading
import time
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .aws_services import AwsServices

METADATA_ADDRESS = "169.254.169.254"
MAX_TOKEN_TTL = 21600
CREDENTIALS = "/latest/meta-data/iam/security-credentials/"


class InstanceMetadata:
    def __init__(self, address: str, services: "AwsServices", machine_of: Callable[[str], str | None]) -> None:
        """`machine_of(ip)`: the name of the machine that owns an address (primary or extra NIC)."""
        self.services = services
        self._machine_of = machine_of
        self._lock = threading.Lock()
        self._instances: dict[str, tuple[str, str | None]] = {}  # machine name -> (instance id, profile name)
        self._user_data: dict[str, str] = {}  # machine name -> its instance's user data
        self._tokens: dict[str, tuple[str, float]] = {}  # token -> (machine name, expiry)
        self._credentials: dict[tuple[str, str], dict] = {}  # (machine, role) -> answer
        self.requests: list[tuple[str, str, str, int]] = []  # (machine, method, path, status)
        metadata = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self, status: int, body: str = "", content_type: str = "text/plain",
                        headers: dict[str, str] | None = None) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
                metadata.requests.append((metadata._machine_of(self.client_address[0]) or self.client_address[0],
                                          self.command, self.path, status))

            def do_PUT(self):  # noqa: N802 (http.server's naming)
                machine = metadata._machine_of(self.client_address[0])
                if self.path != "/latest/api/token" or machine is None:
                    return self._answer(404)
                if self.headers.get("X-Forwarded-For"):
                    return self._answer(403)
                ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
                if not ttl.isdigit() or not 1 <= int(ttl) <= MAX_TOKEN_TTL:
                    return self._answer(400)
                token = secrets.token_urlsafe(32)
                with metadata._lock:
                    metadata._tokens[token] = (machine, time.monotonic() + int(ttl))
                self._answer(200, token, headers={"X-aws-ec2-metadata-token-ttl-seconds": ttl})

            def do_GET(self):  # noqa: N802
                machine = metadata._machine_of(self.client_address[0])
                token = self.headers.get("X-aws-ec2-metadata-token", "")
                with metadata._lock:
                    owner, expiry = metadata._tokens.get(token, (None, 0.0))
                if machine is None or owner != machine or expiry < time.monotonic():
                    return self._answer(401)
                status, body, content_type = metadata.answer(machine, self.path)
                self._answer(status, body, content_type)

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer((address, 0), Handler)
        self._server.daemon_threads = True
        self.address, self.port = address, self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="localcloud-imds", daemon=True).start()

    def attach(self, machine: str, instance_id: str, profile: str | None, user_data: str | None = None) -> None:
        """The instance on `machine` now carries `profile` (None: no profile) and `user_data`."""
        with self._lock:
            self._instances[machine] = (instance_id, profile or None)
            if user_data:
                self._user_data[machine] = user_data
            else:
                self._user_data.pop(machine, None)
            self._credentials = {k: v for k, v in self._credentials.items() if k[0] != machine}

    def detach(self, machine: str) -> None:
        with self._lock:
            self._instances.pop(machine, None)
            self._user_data.pop(machine, None)

    def answer(self, machine: str, path: str) -> tuple[int, str, str]:
        with self._lock:
            instance_id, profile = self._instances.get(machine, (None, None))
        if instance_id is None:
            return 404, "", "text/plain"
        if path == "/latest/meta-data/instance-id":
            return 200, instance_id, "text/plain"
        if path == "/latest/user-data":
            with self._lock:
                user_data = self._user_data.get(machine)
            return (200, user_data, "application/octet-stream") if user_data else (404, "", "text/plain")
        if not path.startswith(CREDENTIALS):
            return 404, "", "text/plain"
        role = self._role_of(profile) if profile else None
        if role is None:
            return 404, "", "text/plain"
        asked = path[len(CREDENTIALS):]
        if asked == "":
            return 200, role["RoleName"], "text/plain"
        if asked != role["RoleName"]:
            return 404, "", "text/plain"
        return 200, json.dumps(self._role_credentials(machine, instance_id, role)), "application/json"

    def _role_of(self, profile: str) -> dict | None:
        """The profile's role, if EC2 may assume it (its trust policy names ec2.amazonaws.com)."""
        iam = self.services.client("iam")
        try:
            roles = iam.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"]["Roles"]
        except iam.exceptions.NoSuchEntityException:
            return None
        if not roles:
            return None
        role = iam.get_role(RoleName=roles[0]["RoleName"])["Role"]
        trust = role["AssumeRolePolicyDocument"]
        trust = json.loads(trust) if isinstance(trust, str) else trust
        for statement in trust.get("Statement", []):
            services = (statement.get("Principal") or {}).get("Service", [])
            services = [services] if isinstance(services, str) else services
            actions = statement.get("Action", [])
            actions = [actions] if isinstance(actions, str) else actions
            if statement.get("Effect") == "Allow" and "ec2.amazonaws.com" in services and "sts:AssumeRole" in actions:
                return role
        return None

    def _role_credentials(self, machine: str, instance_id: str, role: dict) -> dict:
        key = (machine, role["RoleName"])
        with self._lock:
            cached = self._credentials.get(key)
        now = datetime.datetime.now(datetime.timezone.utc)
        if cached and datetime.datetime.fromisoformat(cached["Expiration"].replace("Z", "+00:00")) - now > \
                datetime.timedelta(minutes=5):
            return cached
        assumed = self.services.role_credentials(role["Arn"], session=instance_id)
        answer = {"Code": "Success", "LastUpdated": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "Type": "AWS-HMAC",
                  "AccessKeyId": assumed.access_key_id, "SecretAccessKey": assumed.secret_access_key,
                  "Token": assumed.session_token,
                  "Expiration": assumed.expiration.strftime("%Y-%m-%dT%H:%M:%SZ")}
        with self._lock:
            self._credentials[key] = answer
        return answer

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
