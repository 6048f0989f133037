"""Framing over a real socket pair: 4-byte big-endian length, then the JSON body."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest

from asya.runtime import (
    FRAME_HEADER,
    FrameTooLargeError,
    IncompleteFrameError,
    pack_frame,
    read_frame,
)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    server.settimeout(5)
    with client, server:
        yield client, server


def test_pack_frame_prefixes_a_big_endian_length() -> None:
    assert pack_frame(b'{"a":1}') == b"\x00\x00\x00\x07" + b'{"a":1}'
    assert FRAME_HEADER.format == ">I"


def test_small_frame_is_read_whole(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = pair
    client.sendall(pack_frame(b'{"payload": 1}'))

    assert read_frame(server, max_size=1000, chunk_size=65536) == b'{"payload": 1}'


def test_frame_larger_than_the_chunk_size_is_read_in_chunks(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, server = pair
    body = bytes(range(256)) * 40  # 10 KiB
    client.sendall(pack_frame(body))

    assert bytes(read_frame(server, max_size=1 << 20, chunk_size=1024) or b"") == body


def test_header_split_across_reads_is_reassembled(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, server = pair
    frame = pack_frame(b"[1,2,3]")
    client.sendall(frame[:2])
    client.sendall(frame[2:])

    assert bytes(read_frame(server, 100, chunk_size=2) or b"") == b"[1,2,3]"


def test_connection_closed_before_any_byte_is_a_probe(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, server = pair
    client.shutdown(socket.SHUT_WR)

    assert read_frame(server, 100, 65536) is None


def test_empty_body_is_read_as_empty(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = pair
    client.sendall(pack_frame(b""))

    assert read_frame(server, 100, 65536) == b""


def test_oversized_frame_is_refused_from_its_header(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, server = pair
    client.sendall(struct.pack(">I", 5000))

    with pytest.raises(FrameTooLargeError, match="5000 bytes is larger than"):
        read_frame(server, max_size=4999, chunk_size=65536)


@pytest.mark.parametrize(
    ("sent", "complaint"),
    [(b"\x00\x00", "after 2 of 4 header bytes"), (pack_frame(b"0123456789")[:9], "5 of 10 body")],
)
def test_peer_closing_mid_frame_is_an_incomplete_frame(
    pair: tuple[socket.socket, socket.socket], sent: bytes, complaint: str
) -> None:
    client, server = pair
    client.sendall(sent)
    client.shutdown(socket.SHUT_WR)

    with pytest.raises(IncompleteFrameError, match=complaint):
        read_frame(server, 100, chunk_size=4)


def test_peer_going_silent_mid_frame_times_out(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = pair
    server.settimeout(0.2)
    client.sendall(pack_frame(b"0123456789")[:6])

    with pytest.raises(IncompleteFrameError, match=r"sent nothing for 0\.2 s"):
        read_frame(server, 100, 65536)
