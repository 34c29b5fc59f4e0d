"""Configuration: every key has a default; anything wrong is refused, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from kairoi import config
from kairoi.errors import ConfigError


def test_no_file_means_defaults() -> None:
    settings = config.load(None)
    assert settings.controller.listen == "127.0.0.1:5678"
    assert settings.database.fsync_on_persist is True
    assert settings.database.path == "var/data"
    assert settings.storage_endpoint == "ipc://var/run/storage.sock"
    assert settings.runners.shell.allow == ("**",)
    assert settings.warnings == []


def test_shipped_config_file_holds_the_defaults() -> None:
    shipped = config.load(Path(__file__).parents[2] / "config" / "kairoi.toml")
    assert shipped == config.Config()


def test_reference_docs_example_loads() -> None:
    """Reference fault 17: its own documented example failed to load (missing framerate)."""
    settings = config.parse(
        '[log]\nlevel = "info"\n[controller]\nlisten = "127.0.0.1:5678"\n'
        "[database]\nfsync_on_persist = true\n"
    )
    assert settings.database.fsync_on_persist


def test_framerate_is_accepted_with_a_warning() -> None:
    settings = config.parse("[database]\nframerate = 512\n")
    assert settings.warnings == [
        "database.framerate is ignored: storage and the dispatcher are event-driven"
    ]


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    """Reference fault 18: a missing -c file silently meant the defaults."""
    with pytest.raises(ConfigError, match="no such configuration file"):
        config.load(tmp_path / "absent.toml")


def test_name_without_extension_finds_the_toml_file(tmp_path: Path) -> None:
    (tmp_path / "alt.toml").write_text('[controller]\nlisten = "127.0.0.1:9999"\n')
    assert config.load(tmp_path / "alt").controller.listen == "127.0.0.1:9999"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[foo]\nx = 1\n", "unknown key 'foo'"),
        ("[controller]\nlisen = '1'\n", "unknown key 'controller.lisen'"),
        (
            "[runners.shell]\nalow = []\n",
            "unknown key 'runners.shell.allow'".replace("allow", "alow"),
        ),
        ("[controller]\nlisten = 5678\n", "'controller.listen' must be a string"),
        ("[controller]\nlisten = 'nowhere'\n", "'controller.listen' must be HOST:PORT"),
        ("[controller]\nlisten = '127.0.0.1:70000'\n", "'controller.listen' must be HOST:PORT"),
        ("[controller]\nmax_line_bytes = 10\n", "'controller.max_line_bytes' must be at least 64"),
        ("[controller]\nmax_pending = 0\n", "'controller.max_pending' must be at least 1"),
        ("[controller]\nrequest_timeout = 0\n", "'controller.request_timeout'"),
        (
            "[database]\nfsync_on_persist = 'false'\n",
            "'database.fsync_on_persist' must be true or false",
        ),
        ("[database]\nframerate = 0\n", "'database.framerate' must be within 1..65535"),
        ("[database]\nframerate = '100'\n", "'database.framerate' must be an integer"),
        ("[database]\npath = ''\n", "'database.path' must not be empty"),
        ("[log]\nlevel = 'INFO'\n", "'log.level' must be one of"),
        ("[log]\nformat = 'xml'\n", "'log.format' must be one of"),
        (
            "[storage]\nendpoint = 'inproc://x'\n",
            "'storage.endpoint' must be ipc://PATH or tcp://HOST:PORT",
        ),
        ("[storage]\nendpoint = 'ipc:///" + "x" * 120 + "'\n", "longer than 107 bytes"),
        ("[runtime]\ndir = '/" + "x" * 120 + "'\n", "'storage.endpoint'"),
        (
            "[runners.shell]\nallow = 'scripts/*'\n",
            "'runners.shell.allow' must be a list of strings",
        ),
        ("[runners.shell]\nallow = ['']\n", "must not hold an empty pattern"),
        ("log = 1\n", "'log' must be a table"),
        ("[dispatcher]\nendpoint = 'udp://x'\n", "'dispatcher.endpoint' must be ipc://PATH"),
        ("[dispatcher]\nlookahead = -0.1\n", "'dispatcher.lookahead' must be within 0"),
        ("[dispatcher]\nlookahead = 5\n", "'dispatcher.lookahead' must be within 0"),
        ("[dispatcher]\nclaim_batch = 0\n", "'dispatcher.claim_batch' must be at least 1"),
        ("[dispatcher]\nclaim_batch = 10001\n", "'dispatcher.claim_batch' must be at most 10000"),
        ("[runners]\nprocesses = -1\n", "'runners.processes' must be at least 0"),
        ("[runners]\nlease = 0.1\n", "'runners.lease' must be at least 0.3 seconds"),
        ("[runners]\nlease = '10'\n", "'runners.lease' must be a number"),
        ("[runners.shell]\nconcurrency = 0\n", "'runners.shell.concurrency' must be at least 1"),
        ("[runners.amqp]\nconcurrency = 0\n", "'runners.amqp.concurrency' must be at least 1"),
        ("[runners.shell]\ntimeout = -1\n", "'runners.shell.timeout' must be 0"),
        ("[history]\nruns_per_job = 0\n", "'history.runs_per_job' must be at least 1"),
        ("[history]\nkeep = 5\n", "unknown key 'history.keep'"),
        ("[control]\nendpoint = 'http://x'\n", "'control.endpoint' must be ipc://PATH"),
        ("[control]\ntimeout = 0\n", "'control.timeout' must be a number of seconds above 0"),
        ("[runners.shell]\noutput_bytes = -1\n", "'runners.shell.output_bytes' must be at least 0"),
        ("[runners.shell]\noutput_bytes = 1048577\n", "output_bytes' must be at most 1048576"),
        ("[runners.shell]\nconcurrency = 10001\n", "concurrency' must be at most 10000"),
        ("[runners.amqp]\nconcurrency = 10001\n", "concurrency' must be at most 10000"),
        ("[controller\n", "not valid TOML"),
    ],
)
def test_bad_configuration_is_refused_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        config.parse(text, source="test.toml")


def test_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[log]\nlevel = 3\n")
    with pytest.raises(ConfigError, match=f"^{path}: 'log.level' must be a string"):
        config.load(path)


def test_runner_settings() -> None:
    settings = config.parse(
        "[runners]\nprocesses = 3\nlease = 2\n[runners.shell]\ntimeout = 1.5\nconcurrency = 4\n"
        "[dispatcher]\nlookahead = 0.1\nendpoint = 'tcp://0.0.0.0:7100'\n"
    )
    assert (settings.runners.processes, settings.runners.lease) == (3, 2.0)
    assert (settings.runners.shell.timeout, settings.runners.shell.concurrency) == (1.5, 4)
    assert settings.dispatcher_endpoint == "tcp://0.0.0.0:7100"
    assert config.Config().dispatcher_endpoint == "ipc://var/run/dispatcher.sock"


def test_control_endpoint_defaults_to_the_run_directory() -> None:
    assert (
        config.parse('[runtime]\ndir = "/run/k"\n').control_endpoint == "ipc:///run/k/control.sock"
    )
    tcp = config.parse('[control]\nendpoint = "tcp://127.0.0.1:5680"\n')
    assert tcp.control_endpoint == "tcp://127.0.0.1:5680"


def test_tcp_storage_endpoint() -> None:
    settings = config.parse("[storage]\nendpoint = 'tcp://127.0.0.1:7001'\n")
    assert settings.storage_endpoint == "tcp://127.0.0.1:7001"


def test_ipv6_listen() -> None:
    assert config.parse_listen("[::1]:5678") == ("::1", 5678)
