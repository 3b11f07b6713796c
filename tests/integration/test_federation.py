"""Two real Synapses federating over TLS, for the tests of chatters from another server.

These tests ask for the `federation` fixture, which starts the two servers once per
session, only when one of them runs.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

import pytest

from bot.devtools.synapse import SynapseServer
from tests.integration.conftest import Federation

# --------------------------------------------------------------------------------------
# the two servers


def _handshake(port: int, context: ssl.SSLContext) -> None:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname="127.0.0.1"),
    ):
        pass


def federation_port(server: SynapseServer) -> int:
    return int(server.server_name.rpartition(":")[2])


async def test_the_two_servers_federate_over_tls_that_only_the_test_ca_vouches_for(
    federation: Federation,
) -> None:
    for home in (federation.helpline, federation.remote):
        cfg = home.synapse.config()
        assert cfg["federation_verify_certificates"] is True
        assert sorted(cfg["federation_domain_whitelist"]) == sorted(
            [federation.helpline.name, federation.remote.name]
        )
        [ca] = cfg["federation_custom_ca_list"]
        port = federation_port(home.synapse)
        trusting = ssl.create_default_context(cafile=ca)
        await asyncio.to_thread(_handshake, port, trusting)  # the certificate is for 127.0.0.1
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.to_thread(_handshake, port, ssl.create_default_context())
    assert federation.helpline.name != federation.remote.name
