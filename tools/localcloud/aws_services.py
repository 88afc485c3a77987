"""The region's S3, IAM and STS for the local cloud: moto's server, over HTTPS, with IAM enforced.

moto (https://github.com/getmoto/moto, PyPI `moto[server]`) is a real S3
implementation for our purpose: buckets, objects, public access blocks,
ownership controls, default encryption, and with its access control on
(`INITIAL_NO_AUTH_ACTION_COUNT`, moto/core/authorization.py) every request
must carry a valid SigV4 signature of a key it knows, and an identity's IAM
policies decide what it may do (AccessDenied otherwise). So a server's curl
only reads what its role allows.

It listens on the bridge's address, port 443, with a certificate for the
region's S3 names from a CA made per cloud; every machine trusts that CA
(`trust_ca`, as an image trusts the public CAs real S3's certificate comes
from), and private_dns.py resolves the S3 names to that address. The
engine's own calls (the program's AWS provider) go as an administrator
user made first.

moto keeps its state per process: two clouds open at once (a test that makes
its own beside the module's) share it, each with its own administrator; the
state is wiped when the last one closes.

Differences from AWS: one account; no bucket policies or SCPs are evaluated
(moto's access control reads identity policies only); IAM changes apply at
once (AWS's are eventually consistent); no per-request latency or throttling.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
from pathlib import Path

from .private_dns import REGION

S3_PORT = 443
ADMIN = "localcloud-admin"  # + the cloud's tag: moto's state is per process, clouds may overlap
ACCOUNT = "123456789012"  # moto's default account
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"  # Debian's bundle, the one curl reads


def s3_names(buckets: list[str]) -> list[str]:
    """The host names a client uses for the region's S3 (virtual-hosted style per bucket)."""
    return [f"s3.{REGION}.amazonaws.com", *(f"{b}.s3.{REGION}.amazonaws.com" for b in sorted(buckets))]


def _make_certificates(directory: Path, address: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for the S3 names (wildcard per bucket) and the address."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "local cloud test CA")])
    usage = dict(content_commitment=False, key_encipherment=False, data_encipherment=False, key_agreement=False,
                 encipher_only=False, decipher_only=False)
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=7))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, **usage),
                         critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names = [f"s3.{REGION}.amazonaws.com", f"*.s3.{REGION}.amazonaws.com"]
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / "ca.pem", directory / "s3.pem", directory / "s3.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def trust_ca(root: Path, ca_pem: Path) -> None:
    """Add the cloud's CA to a machine's CA bundle (its root file system, before boot)."""
    bundle = root / CA_BUNDLE
    text = bundle.read_text() if bundle.exists() else ""
    pem = ca_pem.read_text()
    if pem not in text:
        if bundle.is_symlink():
            bundle.unlink()
        bundle.write_text(text + ("" if text.endswith("\n") or not text else "\n") + pem)


_open_lock = threading.Lock()
_open: set[int] = set()  # ids of the open AwsServices of this process


class AwsServices:
    def __init__(self, directory: Path, address: str, tag: str) -> None:
        from moto import settings
        from moto.core.authorization import ActionAuthenticatorMixin
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        self.address = address
        self.account = ACCOUNT
        self.endpoint = f"https://{address}:{S3_PORT}"
        self.ca_pem, cert, key = _make_certificates(directory, address)
        # The three requests that make the administrator go unauthenticated; every later one
        # is checked (the counter is per process: a second cloud in the same run counts on).
        settings.INITIAL_NO_AUTH_ACTION_COUNT = ActionAuthenticatorMixin.request_count + 3
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self._server = make_server(address, S3_PORT, DomainDispatcherApplication(create_backend_app), threaded=True,
                                   request_handler=_QuietHandler(MotoRequestHandler), ssl_context=context)
        self._thread = threading.Thread(target=self._server.serve_forever, name="localcloud-aws", daemon=True)
        self._thread.start()
        with _open_lock:
            _open.add(id(self))
        try:
            iam, admin = self.client("iam", credentials=None), f"{ADMIN}-{tag}"
            iam.create_user(UserName=admin)
            iam.put_user_policy(UserName=admin, PolicyName="everything", PolicyDocument=json.dumps({
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
            access_key = iam.create_access_key(UserName=admin)["AccessKey"]
            self._admin = (access_key["AccessKeyId"], access_key["SecretAccessKey"])
        except BaseException:
            self.close()
            raise

    def client(self, service: str, credentials: tuple[str, str] | None | str = "admin"):
        import boto3

        if credentials == "admin":
            key, secret = self._admin
        elif isinstance(credentials, tuple):
            key, secret = credentials
        else:
            key, secret = "anonymous", "anonymous"
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION, verify=str(self.ca_pem),
                            aws_access_key_id=key, aws_secret_access_key=secret)

    def role_credentials(self, role_arn: str, session: str, seconds: int = 3600):
        """Temporary credentials of a role, as EC2 gets them for an instance profile (the EC2
        service assumes the role; its trust policy is checked by the caller). In-process: moto's
        STS API would check the trust policy against an AWS principal, not the EC2 service."""
        from moto.sts.models import sts_backends

        return sts_backends[ACCOUNT]["global"].assume_role(
            region_name=REGION, role_session_name=session, role_arn=role_arn, policy=None,  # type: ignore[arg-type]
            duration=seconds, external_id=None)  # type: ignore[arg-type]

    # -- what the tests look at ----------------------------------------------
    def buckets(self) -> list[str]:
        return [b["Name"] for b in self.client("s3").list_buckets().get("Buckets", [])]

    def objects(self, bucket: str) -> list[str]:
        return [o["Key"] for o in self.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])]

    def close(self) -> None:
        from moto import settings
        from moto.moto_api._internal.models import moto_api_backend

        self._server.shutdown()
        self._server.server_close()
        with _open_lock:
            _open.discard(id(self))
            if not _open:  # the last one: the next cloud starts empty
                moto_api_backend.reset()
                settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")


def _QuietHandler(base):
    """moto's request handler without a log line per request on the test's output."""
    class Handler(base):
        def log_request(self, *args, **kwargs):
            pass
    return Handler
