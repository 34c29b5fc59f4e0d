"""A reply the frontend cannot write costs that one reply, never the routing of every other
(issue 13, item 3): an instant past year 9999 in UTC, once accepted and stored, killed the
frontend's reply routing, and every client of every connection got `unavailable` from then
on, with no word in the log, even after a restart.

Whether such an instant is refused where it is parsed or stored and then not formattable,
every test here holds: the replies are in order, the connection and any other go on, and no
process restarts.
"""

from __future__ import annotations

from tests.conftest import Running

FAR = "9999-12-31T23:59:59-05:00"  # year 10000 in UTC


def test_an_instant_past_9999_never_stops_the_replies(server: Running) -> None:
    before = server.pids()
    with server.client() as client:
        set_reply = client.call("SET", "far", FAR)
        get_reply = client.call("GET", "far")
        listed, last = client.call_list("LIST", "far")
        assert client.call("PING") == ["OK", "PONG"]
    if set_reply == ["OK"]:  # stored: what shows it says so, alone
        assert get_reply[:2] in (["OK", "planned"], ["ERROR", "internal"]), get_reply
        assert last[0] == "OK" or last[:2] == ["ERROR", "internal"], last
    else:
        assert set_reply[:2] == ["ERROR", "invalid"], set_reply
        assert get_reply[:2] == ["ERROR", "not_found"] and listed == [] and last == ["OK", "0"]
    with server.client() as other:
        assert other.call("PING") == ["OK", "PONG"]
        assert other.call("SET", "near", "2030-01-01 00:00:00") == ["OK"]
        assert other.call("GET", "near")[:2] == ["OK", "planned"]
    assert server.pids() == before
    assert not server.server.events("storage.timeout")
    failed = server.server.events("frontend.reply_failed", "frontend")
    assert all("exception" in event or "exc_info" in event for event in failed)
