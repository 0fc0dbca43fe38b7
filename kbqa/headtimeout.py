"""A connection must send a whole request head in time (server.header_timeout_s).

uvicorn waits for a first request's head for ever, and a client that sends a byte now and then
keeps even a kept-alive connection open: a few hundred such connections (slowloris) hold a server's
sockets while sending next to nothing. Both servers run on this protocol: H11Protocol, with one timer
per connection, armed when it opens and again when each response is complete. When it fires and no
request is under way, a client that sent part of a head gets 408 and the connection is closed; one
that sent nothing is closed. A request whose head has arrived is not timed here: its body is
(server.body_timeout_s, kbqa/api.py's BodyLimit), and its answer may stream for as long as it takes.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from uvicorn.protocols.http.h11_impl import H11Protocol

LATE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
        b"content-length: %d\r\n\r\n%s")


class HeadDeadline(H11Protocol):
    timeout_s: ClassVar[float] = 30.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._heard = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._arm()

    def data_received(self, data: bytes) -> None:
        self._heard = self._heard or bool(data)
        super().data_received(data)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._heard = False
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = None if self.transport.is_closing() else self.loop.call_later(self.timeout_s, self._late)

    def _late(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.transport.get_protocol() is not self:  # closed, or now a WebSocket
            return
        if self.cycle is not None and not self.cycle.response_complete:  # a request is under way
            return
        if self._heard:
            said = f"the request head did not arrive within {self.timeout_s:g} s (server.header_timeout_s)\n".encode()
            self.transport.write(LATE % (len(said), said))
        self.transport.close()


def protocol(timeout_s: float) -> type[HeadDeadline]:
    """The protocol class for uvicorn.Config(http=...), with this deadline."""
    return type("HeadDeadline", (HeadDeadline,), {"timeout_s": timeout_s})


def use_for_gradio(timeout_s: float) -> None:
    """Gradio builds its own uvicorn.Config with http="auto": point "auto" at this protocol, in the
    one process that serves the web chat (`kbqa serve`), before it launches."""
    import uvicorn.config

    HeadDeadline.timeout_s = timeout_s
    protocols: Any = uvicorn.config.HTTP_PROTOCOLS
    protocols["auto"] = f"{__name__}:HeadDeadline"
