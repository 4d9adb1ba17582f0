"""The REST listening socket makes asyncio turn Nagle off on accepted connections (otherwise
Nagle + delayed ACK add ~40 ms to every HTTP response)."""

from __future__ import annotations

import asyncio
import socket

from csms.app import _listening_socket


async def test_accepted_api_connections_have_tcp_nodelay() -> None:
    sock = _listening_socket("127.0.0.1", 0)
    nodelay: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def accepted(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("socket")
        nodelay.set_result(peer.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(accepted, sock=sock)
    try:
        port = sock.getsockname()[1]
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(nodelay, 5) != 0
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
