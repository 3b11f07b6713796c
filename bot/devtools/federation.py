"""Two throwaway Synapses on 127.0.0.1 that federate with each other, and nobody else.

Each server is named by its federation address, `127.0.0.1:<port>`: a server name with an
IP literal and a port is reached at exactly that address (no DNS, no SRV, no
`.well-known`), so no other host is ever looked up or contacted. Federation runs over TLS
as in production: a test CA is made at start (an EC key, valid for a day), each server
gets its own certificate from it for the IP 127.0.0.1, and each trusts that CA alone
(`federation_custom_ca_list`, certificates verified). `federation_domain_whitelist` names
just the two servers. Synapse's block list of private addresses would refuse loopback
federation, and for a server name that is an IP literal its allow list is not consulted:
so the block list is Synapse's own default less 127.0.0.0/8.

Both servers are started at once (each start is mostly a Python import and a database
schema, and the two overlap well on two cores). Stopping is by PID, as for any
`SynapseServer`.
"""

from __future__ import annotations

import datetime
import ipaddress
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bot.devtools.synapse import HOST, SynapseServer, free_port

_VALID_FOR = datetime.timedelta(days=1)


@dataclass(frozen=True)
class TestCA:
    """A certificate authority made for one test session; its key never leaves the data
    directory it was written to."""

    cert_path: Path
    _key: ec.EllipticCurvePrivateKey
    _cert: x509.Certificate

    __test__ = False  # not a pytest class, whatever its name says

    @classmethod
    def create(cls, directory: Path) -> TestCA:
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "helpline-bot test CA")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALID_FOR)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        cert_path = directory / "ca.crt"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(cert_path, key, cert)

    def issue(self, directory: Path, common_name: str) -> tuple[Path, Path]:
        """A server certificate for 127.0.0.1 (the IP is what a server name like
        `127.0.0.1:8448` is checked against); returns (certificate, key) paths."""
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALID_FOR)
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), False
            )
            .sign(self._key, hashes.SHA256())
        )
        cert_path = directory / "tls.crt"
        key_path = directory / "tls.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_path, key_path


def federating_servers(base_dir: Path, count: int = 2) -> list[SynapseServer]:
    """`count` Synapses, configured (not started) to federate with each other only."""
    from synapse.config.server import DEFAULT_IP_RANGE_BLOCKLIST

    blocklist = [r for r in DEFAULT_IP_RANGE_BLOCKLIST if r != "127.0.0.0/8"]
    ca = TestCA.create(base_dir / "ca")
    ports = [free_port() for _ in range(count)]
    names = [f"{HOST}:{port}" for port in ports]
    servers = []
    for i, (port, name) in enumerate(zip(ports, names, strict=True)):
        data_dir = base_dir / f"hs{i + 1}"
        cert, key = ca.issue(data_dir, name)
        listener = {
            "port": port,
            "bind_addresses": [HOST],
            "type": "http",
            "tls": True,
            "x_forwarded": False,
            "resources": [{"names": ["federation"], "compress": False}],
        }
        extra = {
            "tls_certificate_path": str(cert),
            "tls_private_key_path": str(key),
            "federation_verify_certificates": True,
            "federation_custom_ca_list": [str(ca.cert_path)],
            "federation_domain_whitelist": names,
            "ip_range_blacklist": blocklist,
        }
        servers.append(
            SynapseServer(
                data_dir, server_name=name, extra_listeners=[listener], extra_config=extra
            )
        )
    return servers


def start_all(servers: list[SynapseServer]) -> float:
    """Start the servers side by side; return the wall time until all answer. If one
    fails, the others are stopped and its error is raised."""
    started = time.monotonic()
    errors: list[BaseException] = []

    def run(server: SynapseServer) -> None:
        try:
            server.start()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,), daemon=True) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        for server in servers:
            server.stop(timeout=5)
        raise errors[0]
    return time.monotonic() - started
