"""AMQP DSNs: read as aio-pika reads them, refused with the reason when malformed."""

from __future__ import annotations

import pytest

from kairoi.amqp.dsn import Endpoint, mask_dsn, parse_dsn


def test_defaults_are_aio_pikas() -> None:
    assert parse_dsn("amqp://broker") == Endpoint(
        host="broker", port=5672, tls=False, user="guest", password="guest", vhost="/",
        heartbeat=60, name="kairoi",
    )  # fmt: skip
    assert parse_dsn("amqps://broker/").port == 5671


def test_every_part_is_read_and_unquoted() -> None:
    endpoint = parse_dsn("amqps://us%40er:p%2Fw@h:1234/v%2Fhost?heartbeat=5&name=billing")
    assert (endpoint.user, endpoint.password) == ("us@er", "p/w")
    assert (endpoint.host, endpoint.port, endpoint.tls) == ("h", 1234, True)
    assert (endpoint.vhost, endpoint.heartbeat, endpoint.name) == ("v/host", 5, "billing")


@pytest.mark.parametrize(
    ("dsn", "reason"),
    [
        ("http://h/", "scheme must be amqp"),
        ("amqp://", "names no host"),
        ("amqp://h:99999/", "port must be a number between 0 and 65535"),
        ("amqp://h:port/", "port must be a number between 0 and 65535"),
        ("", "scheme must be amqp"),
        ("amqp://h/?heartbeat=soon", "heartbeat must be whole seconds"),
        ("amqp://h/?heartbeat=70000", "heartbeat must be whole seconds"),
        ("amqp://h/?ssl_options=x", "unsupported option 'ssl_options'"),
    ],
)
def test_invalid_dsns_say_why(dsn: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_dsn(dsn)


def test_mask_dsn_hides_only_the_password() -> None:
    assert mask_dsn("amqp://guest:s3cret@h:5672/v?x=1") == "amqp://guest:***@h:5672/v?x=1"
    assert mask_dsn("amqp://h/") == "amqp://h/"
    assert mask_dsn("amqp://user@h/") == "amqp://user@h/"
