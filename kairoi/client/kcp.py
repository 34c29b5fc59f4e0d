"""A blocking KCP client: send lines, read replies (parsed with the server's own grammar)."""

from __future__ import annotations

import socket
from collections import deque

from kairoi.frontend.kcp import Malformed, Message, Parser, SetLines, quote


class ReplyError(Exception):
    """The server sent something that is not a reply line."""


class KcpClient:
    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self._parser = Parser()
        self._replies: deque[Message] = deque()
        self._next_id = 0

    def __enter__(self) -> KcpClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> Message:
        """The next reply: ``request_id`` and its words (``OK``… or ``ERROR code reason``)."""
        while not self._replies:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            self._parser.feed(data)
            while (parsed := self._parser.next()) is not None:
                if isinstance(parsed, Malformed):
                    raise ReplyError(f"unparsable reply: {parsed.reason}")
                if isinstance(parsed, SetLines):
                    raise ReplyError(f"a SET instruction is not a reply: {parsed.messages()[0]}")
                self._replies.append(parsed)
        return self._replies.popleft()

    def call(self, *words: str) -> list[str]:
        """Send one instruction and return the words of its reply after the id."""
        request_id = self._send_request(words)
        return self._reply_to(request_id).arguments

    def call_list(self, *words: str) -> tuple[list[list[str]], list[str]]:
        """Send an instruction whose reply may hold a line per item (LIST, RUNS, RULE LIST):
        the words of each item line after the id, and of the last line (``OK <count>`` or
        ``ERROR …``)."""
        request_id = self._send_request(words)
        items = []
        while (reply := self._reply_to(request_id)).arguments[0] not in ("OK", "ERROR"):
            items.append(reply.arguments)
        return items, reply.arguments

    def _send_request(self, words: tuple[str, ...]) -> str:
        self._next_id += 1
        request_id = f"c{self._next_id}"
        self.send((" ".join([request_id, *map(quote, words)]) + "\n").encode())
        return request_id

    def _reply_to(self, request_id: str) -> Message:
        reply = self.reply()
        if reply.request_id != request_id:
            raise ReplyError(f"reply to {reply.request_id!r} while waiting for {request_id!r}")
        return reply

    def read_all(self) -> bytes:
        """Everything until the server closes the connection."""
        chunks = []
        while data := self.sock.recv(65536):
            chunks.append(data)
        return b"".join(chunks)

    def close(self) -> None:
        self.sock.close()
