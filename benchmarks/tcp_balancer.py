"""A tiny asyncio TCP round-robin balancer for tests and demos of several CSMS nodes.

Not for production: use HAProxy (or nginx stream, Envoy, a cloud L4 balancer) in TCP mode in
front of the nodes' OCPP ports (see the README section on several nodes). This one does just
what the tests need: each new connection goes to the next backend in turn; a backend that
refuses the connection is skipped (a killed node); when either side closes, both close.

Each connection takes its own starting place in the rotation once and then tries every backend
in order from there, so concurrent connects cannot push one another's second attempt back onto
the dead backend; a backend that refused is tried last for `down_for_s` (then probed again).

    python benchmarks/tcp_balancer.py --listen 127.0.0.1:9000 \
        --backend 127.0.0.1:9001 --backend 127.0.0.1:9002
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections import Counter

Address = tuple[str, int]


class TcpBalancer:
    def __init__(
        self,
        backends: list[Address],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        connect_timeout_s: float = 2.0,
        down_for_s: float = 1.0,
    ) -> None:
        if not backends:
            raise ValueError("at least one backend")
        self.backends = list(backends)
        self.host = host
        self.requested_port = port
        self.connect_timeout_s = connect_timeout_s
        self.down_for_s = down_for_s
        self._down_until: dict[Address, float] = {}
        self.accepted: Counter[Address] = Counter()  # connections sent to each backend
        self.refused: Counter[Address] = Counter()  # backends skipped because they refused
        self._next = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_client, self.host, self.requested_port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    def _attempt_order(self) -> list[Address]:
        """This connection's backends: the rotation from its own start (taken once, so other
        connects cannot move it), backends marked down moved to the end."""
        count = len(self.backends)
        start = self._next % count
        self._next += 1
        rotation = [self.backends[(start + k) % count] for k in range(count)]
        now = asyncio.get_running_loop().time()
        up = [b for b in rotation if self._down_until.get(b, 0.0) <= now]
        return up + [b for b in rotation if b not in up]

    async def _connect_backend(
        self,
    ) -> tuple[Address, asyncio.StreamReader, asyncio.StreamWriter] | None:
        for backend in self._attempt_order():
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(*backend), self.connect_timeout_s
                )
            except (OSError, TimeoutError):
                self.refused[backend] += 1
                self._down_until[backend] = asyncio.get_running_loop().time() + self.down_for_s
                continue
            self._down_until.pop(backend, None)
            self.accepted[backend] += 1
            return backend, reader, writer
        return None

    async def _on_client(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        try:
            found = await self._connect_backend()
            if found is None:
                return
            _, backend_reader, backend_writer = found
            try:
                upstream = asyncio.create_task(_pipe(client_reader, backend_writer))
                downstream = asyncio.create_task(_pipe(backend_reader, client_writer))
                try:
                    await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    upstream.cancel()
                    downstream.cancel()
                    await asyncio.gather(upstream, downstream, return_exceptions=True)
            finally:
                await _close(backend_writer)
        finally:
            await _close(client_writer)
            self._pipes.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()


def _address(text: str) -> Address:
    host, _, port = text.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


async def _main(listen: Address, backends: list[Address]) -> None:
    balancer = TcpBalancer(backends, host=listen[0], port=listen[1])
    await balancer.start()
    print(
        f"balancing {listen[0]}:{balancer.port} over {', '.join(f'{h}:{p}' for h, p in backends)}"
    )
    try:
        await asyncio.Event().wait()
    finally:
        await balancer.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=_address, default=("127.0.0.1", 9000))
    parser.add_argument("--backend", type=_address, action="append", required=True)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args.listen, args.backend))


if __name__ == "__main__":
    main()
