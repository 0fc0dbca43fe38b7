"""A connection must send a whole request head in time (server.header_timeout_s), and, on the web
chat's server, keep its request body coming (server.body_timeout_s).

uvicorn waits for a first request's head for ever, and a client that sends a byte now and then
keeps even a kept-alive connection open: a few hundred such connections (slowloris) hold a server's
sockets while sending next to nothing. Both servers run on this protocol: H11Protocol, with one timer
per connection, armed when it opens and again when each response is complete. When it fires and no
request is under way, a client that had sent part of the next head gets 408 and the connection is
closed; one that sent nothing, or was already answered while it still sent a body, is closed.

A request whose head has arrived is not timed by that timer: its answer may stream for as long as it
takes. Its body is timed here by the gap between its pieces (`body_gap_s`), as nginx's
client_body_timeout does, on both servers (the web chat's app is Gradio's own). A gap while the server itself stopped reading (the app has not taken
what came) does not count. A client sending a byte just inside each gap still holds its request:
a reverse proxy with a minimum rate is the answer to that (README).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

LATE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
        b"content-length: %d\r\n\r\n%s")


class HeadDeadline(H11Protocol):
    timeout_s: ClassVar[float] = 30.0
    body_gap_s: ClassVar[float] = 60.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_body()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        super().connection_lost(exc)

    def _gone(self) -> bool:
        return self.transport.is_closing() or self.transport.get_protocol() is not self  # closed, or now a WebSocket

    def _arm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = None if self.transport.is_closing() else self.loop.call_later(self.timeout_s, self._head_late)

    def _head_late(self) -> None:
        self._head_timer = None
        if self._gone() or (self.cycle is not None and not self.cycle.response_complete):  # a request is under way
            return
        # part of a next head is waiting in h11's buffer, and nothing was answered to it: a 408
        self._close(f"the request head did not arrive within {self.timeout_s:g} s (server.header_timeout_s)",
                    say=bool(self.conn.trailing_data[0]) and self.conn.our_state is h11.IDLE)

    def _watch_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        if not self.transport.is_closing() and self.conn.their_state is h11.SEND_BODY:
            self._body_timer = self.loop.call_later(self.body_gap_s, self._body_late)

    def _body_late(self) -> None:
        self._body_timer = None
        if self._gone() or self.conn.their_state is not h11.SEND_BODY:
            return
        if self.flow.read_paused:  # the app has not taken what came: not the client's gap
            self._watch_body()
            return
        self._close(f"the request body stopped arriving: nothing for {self.body_gap_s:g} s (server.body_timeout_s)",
                    say=self.conn.our_state is h11.SEND_RESPONSE)  # nothing answered yet

    def _close(self, why: str, say: bool) -> None:
        if say:
            said = f"{why}\n".encode()
            self.transport.write(LATE % (len(said), said))
        self.transport.close()


def protocol(timeout_s: float, body_gap_s: float) -> type[HeadDeadline]:
    """The protocol class for uvicorn.Config(http=...), with these limits."""
    return type("HeadDeadline", (HeadDeadline,), {"timeout_s": timeout_s, "body_gap_s": body_gap_s})


def use_for_gradio(timeout_s: float, body_gap_s: float) -> None:
    """Gradio builds its own uvicorn.Config with http="auto": point "auto" at this protocol with these
    limits. It changes uvicorn's table for the rest of the process, which is why only `kbqa serve`
    calls it, once, before it launches the web chat."""
    import uvicorn.config

    HeadDeadline.timeout_s, HeadDeadline.body_gap_s = timeout_s, body_gap_s
    protocols: Any = uvicorn.config.HTTP_PROTOCOLS
    protocols["auto"] = f"{__name__}:HeadDeadline"
