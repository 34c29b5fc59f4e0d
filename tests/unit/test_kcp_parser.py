"""The KCP grammar, byte for byte as the reference server parses it (reference §3, §13)."""

from __future__ import annotations

import random

import pytest

from kairoi.frontend.kcp import Malformed, Message, Parsed, Parser, SetLines, quote


def parse_raw(
    data: bytes, chunk: int | None = None, limit: int = 1 << 20
) -> tuple[list[Parsed], Parser]:
    """What the parser gives, runs of SET lines as SetLines."""
    parser = Parser(limit)
    out: list[Parsed] = []
    pieces = [data] if chunk is None else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    for piece in pieces:
        parser.feed(piece)
        while (parsed := parser.next()) is not None:
            out.append(parsed)
    return out, parser


def parse(
    data: bytes, chunk: int | None = None, limit: int = 1 << 20
) -> tuple[list[Parsed], Parser]:
    """What the parser gives, one Message per line (SetLines expanded)."""
    raw, parser = parse_raw(data, chunk, limit)
    out: list[Parsed] = []
    for parsed in raw:
        out.extend(parsed.messages() if isinstance(parsed, SetLines) else [parsed])
    return out, parser


def messages(data: bytes) -> list[Parsed]:
    whole, _ = parse(data)
    assert parse(data, chunk=1)[0] == whole, "byte-by-byte input must parse the same"
    return whole


# The reference's own unit test (controller::client::parser::tests::test_parse).
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"A VERSION\n", Message("A", ["VERSION"])),
        (
            b"  Id   VERSION toto   32t\\ata titi 111   \n",
            Message("Id", ["VERSION", "toto", "32t\\ata", "titi", "111"]),
        ),
        (b'"123" "UNSET"\n', Message("123", ["UNSET"])),
        (b' "\\"" "\\""   \n', Message('"', ['"'])),
        (
            b'A "\n" "I can\\" con$tain\\\\every.thing\\""\n',
            Message("A", ["\n", 'I can" con$tain\\every.thing"']),
        ),
        (
            b'1 SET app.domain.job.1 "2030-01-01 00:00:00"\n',
            Message("1", ["SET", "app.domain.job.1", "2030-01-01 00:00:00"]),
        ),
    ],
)
def test_reference_parser_vectors(data: bytes, expected: Message) -> None:
    assert messages(data) == [expected]


@pytest.mark.parametrize("data", [b"VER", b' "\\', b"A B", b'A "open\n\n', b""])
def test_incomplete_input_waits(data: bytes) -> None:
    assert messages(data) == []


def test_leftover_input_stays_buffered() -> None:
    out, parser = parse(b"toto\nhey")
    assert out == [Malformed("toto", "missing instruction after the identifier")]
    parser.feed(b" you\n")
    assert parser.next() == Message("hey", ["you"])


def test_blank_lines_are_malformed_without_id() -> None:
    out = messages(b'\n\nHEYHEY "next')
    assert [m.request_id for m in out if isinstance(m, Malformed)] == [None, None]


def test_tab_is_an_ordinary_character() -> None:
    assert messages(b"1 SET tab\tid x\n") == [Message("1", ["SET", "tab\tid", "x"])]


def test_quoted_strings_need_no_surrounding_space() -> None:
    assert messages(b'a"b"c X\n') == [Message("a", ["b", "c", "X"])]
    assert messages(b'"x"y Z\n') == [Message("x", ["y", "Z"])]


def test_empty_quoted_string_is_an_argument() -> None:
    assert messages(b'1 RULE SET r2 "" shell x\n') == [
        Message("1", ["RULE", "SET", "r2", "", "shell", "x"])
    ]


def test_backslash_is_literal_in_simple_strings() -> None:
    assert messages(b"1 X a\\nb\n") == [Message("1", ["X", "a\\nb"])]


@pytest.mark.parametrize("escape", [b"\\n", b"\\t", b"\\U"])
def test_invalid_escape_is_malformed_with_id(escape: bytes) -> None:
    (out,) = messages(b'A "x' + escape + b'"\nB OK\n')[:1]
    assert isinstance(out, Malformed)
    assert out.request_id == "A"
    assert escape.decode() in out.reason


def test_invalid_escape_in_the_id_loses_the_id() -> None:
    assert messages(b'"a\\n" X\n') == [Malformed(None, "invalid escape \\n in a quoted string")]


def test_message_after_a_malformed_one_parses() -> None:
    out = messages(b'A "x\\n"\nB GO\n')
    assert out[1] == Message("B", ["GO"])


def test_crlf_ends_a_line() -> None:
    """Reference fault 5: CR became part of the last argument."""
    assert messages(b'ID SET j "2020-01-01 00:00:00"\r\n') == [
        Message("ID", ["SET", "j", "2020-01-01 00:00:00"])
    ]
    assert messages(b"x RULE SET r p shell script.sh\r\n")[0] == Message(
        "x", ["RULE", "SET", "r", "p", "shell", "script.sh"]
    )
    assert messages(b'x "y"\r\n') == [Message("x", ["y"])]


def test_cr_elsewhere_is_an_ordinary_character() -> None:
    assert messages(b"x a\rb c\n") == [Message("x", ["a\rb", "c"])]
    assert messages(b'x "a\r\n" c\n') == [Message("x", ["a\r\n", "c"])]


def test_utf8_split_across_reads_is_decoded_once() -> None:
    """Reference fault 3: an extra U+FFFD appeared when a character was split."""
    assert parse("é SET café x\n".encode(), chunk=1)[0] == [Message("é", ["SET", "café", "x"])]


def test_invalid_utf8_becomes_replacement_character() -> None:
    assert messages(b"app.\xff X\n") == [Message("app.\ufffd", ["X"])]


def test_line_longer_than_the_limit_is_fatal() -> None:
    """Reference fault 2: a stray quote swallowed input with no bound."""
    out, _ = parse(b'1 SET "' + b"x" * 200, chunk=7, limit=100)
    assert out == [Malformed("1", "message longer than 100 bytes without an LF", fatal=True)]


def test_complete_line_longer_than_the_limit_is_fatal() -> None:
    out, _ = parse(b"1 SET " + b"x" * 200 + b"\n", limit=100)
    assert len(out) == 1 and isinstance(out[0], Malformed) and out[0].fatal


def test_finish_reports_a_message_without_lf() -> None:
    _, parser = parse(b"7 SET x")
    assert parser.finish() == Malformed("7", "incomplete message: the input ended before its LF")
    _, parser = parse(b"   ")
    assert parser.finish() is None


def test_trickled_input_is_scanned_once() -> None:
    parser = Parser()
    parser.feed(b'1 SET "')
    for _ in range(100_000):
        parser.feed(b"y")
        assert parser.next() is None
    parser.feed(b'" z\n')
    parsed = parser.next()
    assert isinstance(parsed, Message) and parsed.arguments[1] == "y" * 100_000


def _random_argument(rng: random.Random) -> bytes:
    alphabet = [
        b"a",
        b"Z",
        b"0",
        b".",
        b"\\",
        b'"',
        b" ",
        b"\n",
        b"\r",
        b"\t",
        "é".encode(),
        b"\xff",
    ]
    raw = b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
    return quote(raw.decode("utf-8", "replace")).encode() if rng.random() < 0.7 else raw


def test_fast_and_full_parsers_agree_on_random_input() -> None:
    rng = random.Random(20261122)
    for _ in range(300):
        data = b"".join(
            b" ".join(_random_argument(rng) for _ in range(rng.randint(0, 4)))
            + rng.choice([b"\n", b"\r\n"])
            for _ in range(rng.randint(1, 8))
        )
        whole, _ = parse(data)
        assert parse(data, chunk=1)[0] == whole
        assert parse(data, chunk=3)[0] == whole


def test_pipelined_sets_come_as_one_run_per_read() -> None:
    data = b"".join(b'%d SET app.job.%d "2030-01-01 00:00:%02d"\n' % (i, i, i) for i in range(50))
    (run,), _ = parse_raw(data)
    assert isinstance(run, SetLines)
    assert run.request_ids == tuple(str(i) for i in range(50))
    assert run.job_ids[7] == "app.job.7" and run.whens[7] == "2030-01-01 00:00:07"


def test_other_lines_split_runs_of_sets_and_keep_their_order() -> None:
    data = (
        b'1 SET a "x"\n2 SET b "y"\n3 RULE SET r a shell s\n'
        b'4 SET "c d" "z"\n5 SET e "w"\n\n6 SET f  "v"\n7 SET g "u"\n'
    )
    out, _ = parse_raw(data)
    assert [type(parsed).__name__ for parsed in out] == [
        "SetLines", "Message", "Message", "SetLines", "Malformed", "Message", "SetLines",
    ]  # fmt: skip
    assert out[0] == SetLines(("1", "2"), ("a", "b"), ("x", "y"))
    assert out[2] == Message("4", ["SET", "c d", "z"])
    assert out[5] == Message("6", ["SET", "f", "v"])


def _random_set_line(rng: random.Random) -> bytes:
    """A SET line of the commonest shape, now and then bent out of it."""
    parts = [b"%d" % rng.randint(0, 99), b"SET", b"job.%d" % rng.randint(0, 9), b'"2030-01-01"']
    bend = rng.randint(0, 12)
    if bend == 1:
        bent = [b" ", b'"', b"\t", "é".encode(), b"\xff", b"\r", b"\\", b'\\"', b"\\\\"]
        parts[rng.randint(0, 3)] += rng.choice(bent)
    elif bend == 2:
        parts[rng.randint(0, 3)] = rng.choice([b"", b'""', b'"a b"', b"set", b'"SET"'])
    elif bend == 3:
        parts.insert(rng.randint(0, 4), rng.choice([b"", b"extra", b'"q"']))
    return b" ".join(parts) + rng.choice([b"\n", b"\n", b"\n", b"\r\n"])


def test_runs_of_sets_parse_as_the_general_parser_does() -> None:
    rng = random.Random(20261202)
    for _ in range(500):
        data = b"".join(_random_set_line(rng) for _ in range(rng.randint(1, 12)))
        whole, _ = parse(data)
        assert parse(data, chunk=1)[0] == whole, data  # byte by byte: never a SetLines
        assert parse(data, chunk=5)[0] == whole, data


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("plain", "plain"),
        ("a b", '"a b"'),
        ("", '""'),
        ('q"', '"q\\""'),
        ("a\nb", '"a\nb"'),
        ("back\\slash", "back\\slash"),
        ("s p\\", '"s p\\\\"'),
    ],
)
def test_quote_round_trips(text: str, quoted: str) -> None:
    assert quote(text) == quoted
    assert messages(f"{quoted} X\n".encode()) == [Message(text, ["X"])]
