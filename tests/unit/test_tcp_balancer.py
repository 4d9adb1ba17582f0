"""The test balancer under concurrent connects while one backend is dead: every client must
reach the live backend (a shared cursor advanced by other connects used to send some clients'
second attempt back to the dead one, closing them without an answer)."""

from __future__ import annotations

import asyncio
import socket

from benchmarks.tcp_balancer import TcpBalancer


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: connecting is refused


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    data = await reader.read(100)
    writer.write(b"ok:" + data)
    await writer.drain()
    writer.close()


async def test_every_concurrent_connect_reaches_the_live_backend_when_one_is_dead() -> None:
    live = await asyncio.start_server(_echo, "127.0.0.1", 0)
    live_port = live.sockets[0].getsockname()[1]
    dead = ("127.0.0.1", _dead_port())
    # The dead backend is first and is never marked down long (0 s): only the per-connection
    # rotation keeps each client's second attempt on the live backend.
    balancer = TcpBalancer([dead, ("127.0.0.1", live_port)], down_for_s=0.0)
    await balancer.start()

    async def client(k: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", balancer.port)
        writer.write(f"c{k}".encode())
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(100), 5)
        writer.close()
        return answer

    try:
        answers = await asyncio.gather(*(client(k) for k in range(200)))
    finally:
        await balancer.close()
        live.close()
        await live.wait_closed()
    closed_without_answer = [k for k, a in enumerate(answers) if not a]
    assert closed_without_answer == []
    assert answers[7] == b"ok:c7"


async def test_a_refusing_backend_is_tried_last_while_marked_down() -> None:
    live = await asyncio.start_server(_echo, "127.0.0.1", 0)
    live_port = live.sockets[0].getsockname()[1]
    dead = ("127.0.0.1", _dead_port())
    balancer = TcpBalancer([dead, ("127.0.0.1", live_port)], down_for_s=60.0)
    await balancer.start()
    try:
        for _ in range(10):
            reader, writer = await asyncio.open_connection("127.0.0.1", balancer.port)
            writer.write(b"x")
            assert await asyncio.wait_for(reader.read(100), 5) == b"ok:x"
            writer.close()
    finally:
        await balancer.close()
        live.close()
        await live.wait_closed()
    assert balancer.refused[dead] == 1  # marked down after its first refusal, not retried
