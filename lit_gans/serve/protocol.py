"""The HTTP protocol under the server: uvicorn's httptools protocol (``uvicorn.Config(http=...)`` takes a protocol
class, LitServe passes ``run``'s extra arguments on to ``uvicorn.Config``) with two changes.

- A request uvicorn cannot parse (a broken ``Content-Length``, a malformed request line) is answered with the same
  one-line JSON 400 as every other 4xx of the server (``{"detail": ...}``), not uvicorn's plain text.
- uvicorn closes a connection idle for ``timeout_keep_alive`` seconds only after a response (HTTP keep-alive); a
  connection that never sends a request, or stops in the middle of its headers or body, would stay open. Here the
  same limit also applies while the server waits for (the rest of) a request, so idle connections cannot pile up;
  never while the application works on a request (LitServe's ``timeout`` covers that).

It reads the protocol's ``cycle`` (the request in flight: ``response_complete``, ``more_body``), ``loop``,
``transport``, ``server_state`` and its keep-alive timer (``timeout_keep_alive``, ``timeout_keep_alive_task``,
``timeout_keep_alive_handler``), as uvicorn's own methods do.
"""

from __future__ import annotations

import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def json_400(msg: str) -> bytes:
    detail = (f"the request is not valid HTTP ({msg.rstrip('.')}): send a well-formed request, e.g. curl -F "
              "image=@photo.png URL/translate")
    return json.dumps({"detail": detail}).encode()


class JsonErrorsHttpProtocol(HttpToolsProtocol):
    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_idle_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        cycle = self.cycle
        if not self.transport.is_closing() and (cycle is None or cycle.response_complete or cycle.more_body):
            self._arm_idle_timer()  # still waiting for (the rest of) a request

    def _arm_idle_timer(self) -> None:
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def send_400_response(self, msg: str) -> None:
        body = json_400(msg)
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [b"content-type: application/json\r\n", b"content-length: " + str(len(body)).encode() + b"\r\n",
                 b"connection: close\r\n", b"\r\n"]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
