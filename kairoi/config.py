"""Configuration: a TOML file (``-c FILE``) over embedded defaults.

Every key has a default, so no file is needed. A file that is named but missing, that does not
parse, or that holds an unknown key or a bad value is refused with a message naming the key.
"""

from __future__ import annotations

import tomllib
import types
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from kairoi.errors import ConfigError
from kairoi.limits import MAX_OUTPUT_BYTES, MAX_RUNNER_SLOTS

T = TypeVar("T")

LOG_LEVELS = ("off", "error", "warn", "info", "debug", "trace")
LOG_FORMATS = ("auto", "json", "console")


@dataclass(frozen=True, kw_only=True)
class LogConfig:
    level: str = "info"
    format: str = "auto"


@dataclass(frozen=True, kw_only=True)
class ControllerConfig:
    listen: str = "127.0.0.1:5678"
    max_line_bytes: int = 1_048_576
    max_pending: int = 10_000
    request_timeout: float = 5.0


@dataclass(frozen=True, kw_only=True)
class DatabaseConfig:
    path: str = "var/data"
    fsync_on_persist: bool = True
    framerate: int | None = None
    """Accepted for the reference's files and ignored: storage is event-driven."""


@dataclass(frozen=True, kw_only=True)
class RuntimeConfig:
    dir: str = "var/run"


@dataclass(frozen=True, kw_only=True)
class StorageConfig:
    endpoint: str = ""
    """Empty means ``ipc://<runtime.dir>/storage.sock``."""
    max_batch: int = 10_000


@dataclass(frozen=True, kw_only=True)
class DispatcherConfig:
    endpoint: str = ""
    """Empty means ``ipc://<runtime.dir>/dispatcher.sock``."""
    lookahead: float = 0.02
    """Seconds ahead of a due time to claim a run; the runner still starts it on time."""
    claim_batch: int = 1000


@dataclass(frozen=True, kw_only=True)
class ShellRunnerConfig:
    allow: tuple[str, ...] = ("**",)
    """Glob patterns (``**`` crosses directories) of the scripts a rule may name, relative to
    the working directory unless absolute."""
    concurrency: int = 16
    timeout: float = 0.0
    """Seconds a script may run before its process group is killed; 0 means no limit."""
    output_bytes: int = 65_536
    """The tail of each run's stdout and stderr kept in its history (the log shows at most
    the last 4 KiB of it)."""


@dataclass(frozen=True, kw_only=True)
class AmqpRunnerConfig:
    concurrency: int = 1024
    """Publishes a runner keeps in flight at once (awaiting the broker's confirmation)."""
    max_connections: int = 16
    """Connections open at once; the least recently used idle one is closed to make room."""
    connect_timeout: float = 5.0
    publish_timeout: float = 5.0
    """Seconds to wait for the broker's confirmation of a message."""


@dataclass(frozen=True, kw_only=True)
class RunnersConfig:
    processes: int = 1
    lease: float = 10.0
    """Seconds a run stays claimed without news from its runner (renewed every third)."""
    shell: ShellRunnerConfig = field(default_factory=ShellRunnerConfig)
    amqp: AmqpRunnerConfig = field(default_factory=AmqpRunnerConfig)


@dataclass(frozen=True, kw_only=True)
class HistoryConfig:
    runs_per_job: int = 100
    """Runs kept per job (each with its output); older ones are deleted as new ones end."""


@dataclass(frozen=True, kw_only=True)
class JobsConfig:
    files: tuple[str, ...] = ()
    """Job files (YAML) the frontend loads at start and on SIGHUP."""


@dataclass(frozen=True, kw_only=True)
class ControlConfig:
    endpoint: str = ""
    """The control bus (``kairoi ctl``); empty means ``ipc://<runtime.dir>/control.sock``."""
    timeout: float = 5.0
    """Seconds ``kairoi ctl`` waits for an answer."""


@dataclass(frozen=True, kw_only=True)
class Config:
    log: LogConfig = field(default_factory=LogConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    dispatcher: DispatcherConfig = field(default_factory=DispatcherConfig)
    runners: RunnersConfig = field(default_factory=RunnersConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    jobs: JobsConfig = field(default_factory=JobsConfig)

    @property
    def storage_endpoint(self) -> str:
        return self.storage.endpoint or f"ipc://{self.runtime.dir}/storage.sock"

    @property
    def dispatcher_endpoint(self) -> str:
        return self.dispatcher.endpoint or f"ipc://{self.runtime.dir}/dispatcher.sock"

    @property
    def control_endpoint(self) -> str:
        return self.control.endpoint or f"ipc://{self.runtime.dir}/control.sock"

    @property
    def warnings(self) -> list[str]:
        """Things a process should log at start: keys accepted but ignored."""
        if self.database.framerate is None:
            return []
        return ["database.framerate is ignored: storage and the dispatcher are event-driven"]


def load(path: str | Path | None) -> Config:
    """The configuration from ``path`` (or ``path.toml``), or the defaults when it is None."""
    if path is None:
        return Config()
    path = Path(path)
    if not path.exists() and path.with_suffix(".toml").exists():
        path = path.with_suffix(".toml")  # as the reference does: `-c alt` reads alt.toml
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    return parse(text, source=str(path))


def parse(text: str, source: str = "<config>") -> Config:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    try:
        config = _build(Config, document, prefix="")
        _validate(config)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return config


def _build(cls: type[T], table: dict[str, Any], prefix: str) -> T:
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    for key in table:
        if key not in known:
            expected = ", ".join(sorted(known))
            raise ConfigError(f"unknown key '{prefix}{key}' (expected one of: {expected})")
    values = {
        name: _convert(hints[name], value, f"{prefix}{name}") for name, value in table.items()
    }
    return cls(**values)


def _convert(hint: Any, value: Any, key: str) -> Any:
    if is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"'{key}' must be a table")
        return _build(hint, value, prefix=f"{key}.")  # type: ignore[arg-type]
    if get_origin(hint) in (Union, types.UnionType):
        if value is None:
            return None
        (hint,) = (arg for arg in get_args(hint) if arg is not type(None))
    if get_origin(hint) is tuple:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"'{key}' must be a list of strings, not {value!r}")
        return tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is not hint:
        raise ConfigError(f"'{key}' must be {_TYPE_NAMES[hint]}, not {value!r}")
    return value


_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", float: "a number"}


def _validate(config: Config) -> None:
    _one_of("log.level", config.log.level, LOG_LEVELS)
    _one_of("log.format", config.log.format, LOG_FORMATS)
    parse_listen(config.controller.listen)
    _at_least("controller.max_line_bytes", config.controller.max_line_bytes, 64)
    _at_least("controller.max_pending", config.controller.max_pending, 1)
    if not config.controller.request_timeout > 0:
        raise ConfigError("'controller.request_timeout' must be a number of seconds above 0")
    if config.database.framerate is not None and not 1 <= config.database.framerate <= 65535:
        raise ConfigError("'database.framerate' must be within 1..65535")
    for key, value in (
        ("database.path", config.database.path),
        ("runtime.dir", config.runtime.dir),
    ):
        if not value:
            raise ConfigError(f"'{key}' must not be empty")
    check_endpoint("storage.endpoint", config.storage_endpoint)
    _at_least("storage.max_batch", config.storage.max_batch, 1)
    check_endpoint("dispatcher.endpoint", config.dispatcher_endpoint)
    _at_least("dispatcher.claim_batch", config.dispatcher.claim_batch, 1)
    _at_most("dispatcher.claim_batch", config.dispatcher.claim_batch, MAX_RUNNER_SLOTS)
    _at_least("runners.processes", config.runners.processes, 0)
    _at_least("runners.shell.concurrency", config.runners.shell.concurrency, 1)
    _at_least("runners.shell.output_bytes", config.runners.shell.output_bytes, 0)
    _at_most("runners.shell.output_bytes", config.runners.shell.output_bytes, MAX_OUTPUT_BYTES)
    _at_least("runners.amqp.concurrency", config.runners.amqp.concurrency, 1)
    _at_most("runners.shell.concurrency", config.runners.shell.concurrency, MAX_RUNNER_SLOTS)
    _at_most("runners.amqp.concurrency", config.runners.amqp.concurrency, MAX_RUNNER_SLOTS)
    _at_least("history.runs_per_job", config.history.runs_per_job, 1)
    check_endpoint("control.endpoint", config.control_endpoint)
    if not config.control.timeout > 0:
        raise ConfigError("'control.timeout' must be a number of seconds above 0")
    _validate_seconds(config)
    if not all(config.runners.shell.allow):
        raise ConfigError("'runners.shell.allow' must not hold an empty pattern")
    if not all(config.jobs.files):
        raise ConfigError("'jobs.files' must not hold an empty path")


def _validate_seconds(config: Config) -> None:
    if not config.runners.lease >= 0.3:
        raise ConfigError("'runners.lease' must be at least 0.3 seconds")
    if not 0 <= config.dispatcher.lookahead < config.runners.lease / 3:
        raise ConfigError("'dispatcher.lookahead' must be within 0 and a third of runners.lease")
    if not config.runners.shell.timeout >= 0:
        raise ConfigError("'runners.shell.timeout' must be 0 (no limit) or a number of seconds")
    _at_least("runners.amqp.max_connections", config.runners.amqp.max_connections, 1)
    for key in ("connect_timeout", "publish_timeout"):
        if not getattr(config.runners.amqp, key) > 0:
            raise ConfigError(f"'runners.amqp.{key}' must be a number of seconds above 0")


def _one_of(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"'{key}' must be one of {', '.join(allowed)}, not {value!r}")


def _at_least(key: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise ConfigError(f"'{key}' must be at least {minimum}, not {value}")


def _at_most(key: str, value: int, maximum: int) -> None:
    if value > maximum:
        raise ConfigError(f"'{key}' must be at most {maximum}, not {value}")


IPC_PATH_MAX = 107  # sun_path is 108 bytes on Linux, one of them the terminating NUL


def check_endpoint(key: str, endpoint: str) -> None:
    scheme, _, rest = endpoint.partition("://")
    if scheme not in ("ipc", "tcp") or not rest:
        raise ConfigError(f"'{key}' must be ipc://PATH or tcp://HOST:PORT, not {endpoint!r}")
    if scheme == "ipc" and len(rest.encode()) > IPC_PATH_MAX:
        raise ConfigError(
            f"'{key}': the socket path {rest!r} is longer than {IPC_PATH_MAX} bytes; "
            "choose a shorter runtime.dir"
        )


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPV6]:PORT`` as (host, port)."""
    host, sep, port_text = listen.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(f"'controller.listen' must be HOST:PORT, not {listen!r}")
    return host, int(port_text)
