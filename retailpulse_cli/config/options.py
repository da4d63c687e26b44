"""Where each run option comes from: the flag, `RETAILPULSE_<NAME>`, a TOML config file,
the job's own stored settings (resume/retry), then the default.

One table (`OPTIONS`) names every option that changes how jobs run; the CLI builds its
flags from it, `retailpulse config` prints it with sources, and a bad value from any place
names that place (the variable, or the file and key). Nothing here prints.
"""

from __future__ import annotations

import math
import os
import stat
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from retailpulse_cli.errors import ConfigError

if TYPE_CHECKING:
    from retailpulse_cli.config.settings import Settings

ENV_PREFIX = "RETAILPULSE_"
MAX_GPU_DELAY = 3600.0  # an hour per image: beyond it a typo, and timers overflow
CONFIG_ENV = "RETAILPULSE_CONFIG"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("expected true or false (1/0, yes/no)")


def _int(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a whole number")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("expected a whole number")
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError("expected a whole number") from None


def _float(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number")
    try:
        number = float(str(value).strip()) if not isinstance(value, int | float) else value
    except ValueError:
        raise ValueError("expected a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError("expected a finite number")
    return float(number)


def _rate(value: object) -> float:
    rate = _float(value)
    if 0 < rate < 0.001:  # one request per 17 minutes: beyond it a typo, and timers overflow
        raise ValueError("use 0 (no limit) or at least 0.001 requests per second")
    return rate


def gpu_delay(value: object) -> tuple[float, float]:
    """'0' -> off, '0.25' -> fixed, '0.1:0.4' (or [0.1, 0.4] in TOML) -> uniform range."""
    if isinstance(value, list | tuple):
        parts = [_float(v) for v in value]
    elif isinstance(value, int | float) and not isinstance(value, bool):
        parts = [float(value)]
    else:
        try:
            parts = [float(p) for p in str(value).split(":")]
        except ValueError:
            raise ValueError("expected MIN:MAX seconds, e.g. 0.1:0.4 or 0") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not all(math.isfinite(p) for p in parts):
        raise ValueError("need MIN:MAX in seconds, e.g. 0.1:0.4 or 0")
    if parts[0] < 0 or parts[1] < parts[0] or parts[1] > MAX_GPU_DELAY:
        raise ValueError(f"need 0 <= MIN <= MAX <= {MAX_GPU_DELAY:g}, e.g. 0.1:0.4 or 0")
    return parts[0], parts[1]


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty string")
    return value


def _results_db(value: object) -> str:
    from retailpulse_cli.storage.results_db.url import normalized

    return normalized(_text(value))


def _path(value: object) -> Path:
    return Path(_text(value if not isinstance(value, Path) else str(value))).expanduser()


class Option(NamedTuple):
    """One run option: its flag `--<name>`, its variable and config key, how to read it.

    A NamedTuple, not a dataclass: the table is read on every command, `status` included,
    and a dataclass costs a code generation at import (start-up, bench/startup.py)."""

    name: str  # long flag without dashes; also the config file key
    parse: Callable[[object], Any]
    help: str
    minimum: float | None = None
    maximum: float | None = None
    flag_type: type = str  # what Typer parses the flag as
    switch: bool = False  # a flag without a value (--no-local-files); default off
    setting: str | None = None  # where the default is written: a Settings field, or a
    #                             DEFAULT_* constant of config.settings; None: no default
    short: str | None = None  # a one-letter flag besides --<name> (-w)

    @property
    def flags(self) -> tuple[str, ...]:
        """The command-line spellings: `--workers`, `-w`."""
        return (f"--{self.name}", self.short) if self.short else (f"--{self.name}",)

    @property
    def dest(self) -> str:
        """The Settings field, or the run-level key (store_master, jobs_dir, ...)."""
        return self.name.replace("-", "_")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper().replace("-", "_")

    @property
    def default(self) -> Any:
        """Shown by `retailpulse config`; None = decided elsewhere. Read from
        config.settings (imported only when a default is asked for: `status` never does)."""
        if self.switch:
            return False
        if self.setting is None:
            return None
        from retailpulse_cli.config import settings

        if self.setting in settings.Settings.__dataclass_fields__:
            return getattr(settings.Settings, self.setting)
        return getattr(settings, self.setting)

    def convert(self, raw: object) -> Any:
        value = self.parse(raw)
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"must be at least {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"must be at most {self.maximum:g}")
        return value


WEEK = 604800.0  # the longest --timeout and --read-timeout: beyond it a typo

# Every option that changes how jobs run: the CLI builds the run commands' flags from this
# table, `retailpulse config` prints it, resolve() reads it. Defaults live in settings.py.
OPTIONS: tuple[Option, ...] = (
    Option(
        "workers",
        _int,
        "Images in the GPU stage at once.",
        1,
        1024,
        int,
        setting="workers",
        short="-w",
    ),
    Option(
        "downloads",
        _int,
        "Images downloaded at once, ahead of the GPU stage.",
        1,
        4096,
        int,
        setting="downloads",
    ),
    Option(
        "gpu-delay",
        gpu_delay,
        "Simulated GPU seconds per image, MIN:MAX; 0 turns it off.",
        setting="gpu_delay",
    ),
    Option("seed", _int, "Make the GPU delays reproducible.", flag_type=int),
    Option(
        "retries", _int, "Extra attempts for transient failures.", 0, 20, int, setting="retries"
    ),
    Option(
        "timeout",
        _float,
        "Seconds of network time per image, all attempts and phases included.",
        0.1,
        WEEK,
        float,
        setting="timeout",
    ),
    Option(
        "read-timeout",
        _float,
        "Longest silence from a server.",
        0.1,
        WEEK,
        float,
        setting="read_timeout",
    ),
    Option("max-bytes", _int, "Largest image body accepted.", 1, None, int, setting="max_bytes"),
    Option(
        "max-pixels", _int, "Largest width x height accepted.", 1, None, int, setting="max_pixels"
    ),
    # no default shown: a host gets as many connections as --downloads unless set (settings_from)
    Option(
        "per-host", _int, "Connections at once to one host (default: as --downloads).", 1, None, int
    ),
    Option(
        "rate",
        _rate,
        "Requests per second per host; 0 = no limit.",
        0.0,
        None,
        float,
        setting="rate",
    ),
    Option(
        "no-local-files",
        _bool,
        "Refuse file:// URLs and paths (untrusted jobs).",
        flag_type=bool,
        switch=True,
    ),
    Option(
        "block-private-networks",
        _bool,
        "Refuse hosts on loopback, private, link-local or metadata addresses.",
        flag_type=bool,
        switch=True,
    ),
    Option(
        "save-images",
        _text,
        "Keep each downloaded image in DEST (a folder, or an fsspec URL such as "
        "s3://bucket/prefix, which needs retailpulse[s3]), named by its sha256.",
    ),
    Option(
        "results-db",
        _results_db,
        "Also write each job's records to this database: sqlite:///FILE (built in) or "
        "postgresql://USER@HOST:PORT/DB (needs retailpulse[postgres]).",
    ),
    Option(
        "cluster",
        _text,
        "Where images run: local (this process), local:N (N Dask worker processes "
        "here) or tcp://HOST:PORT (a Dask scheduler; needs retailpulse[dask]).",
        setting="DEFAULT_CLUSTER",
    ),
    Option(
        "shard-size",
        _int,
        "Images per Dask task with --cluster.",
        1,
        None,
        int,
        setting="DEFAULT_SHARD_SIZE",
    ),
    # Paths, parsed as text: an empty one must reach the check (Path("") is ".").
    Option("store-master", _path, "Store master CSV (default: the shipped one)."),
    Option("jobs-dir", _path, "Where jobs live (default: per-user data dir)."),
    Option("log-file", _path, "Also append the stderr lines, timestamped, to this file."),
)
BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}
BY_DEST: dict[str, Option] = {o.dest: o for o in OPTIONS}


class Resolved(NamedTuple):
    """Every option's value and where it came from ('flag', 'env RETAILPULSE_RATE',
    'config /path/config.toml', 'job', 'default')."""

    values: dict[str, Any]
    sources: dict[str, str]
    config_file: Path | None

    def get(self, dest: str, default: Any = None) -> Any:
        return self.values.get(dest, default)


class RunFlags(NamedTuple):
    """The run options given on the command line (dest -> value; None = not given) and
    the --config file, if one was named: what `resolve` starts from."""

    values: dict[str, Any]
    config_file: Path | None

    def resolve(
        self, *, stored: Mapping[str, Any] | None = None, only: set[str] | None = None
    ) -> Resolved:
        return resolve(self.values, config_file=self.config_file, stored=stored, only=only)


def config_path(given: Path | None, env: Mapping[str, str]) -> tuple[Path | None, bool]:
    """(path, must_exist): --config, else $RETAILPULSE_CONFIG, else the per-user file."""
    if given is not None:
        return given.expanduser(), True
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser(), True
    from platformdirs import user_config_dir

    return Path(user_config_dir("retailpulse")) / "config.toml", False


def read_config(path: Path | None, must_exist: bool) -> dict[str, Any]:
    """The file's keys, checked against the option table; {} when there is no file."""
    if path is None:
        return {}
    try:
        raw = _read_small_file(path)
    except FileNotFoundError:
        if must_exist:
            raise ConfigError(f"{path}: config file not found") from None
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
    try:
        data: dict[str, Any] = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(k for k in data if k not in BY_NAME)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {unknown[0]!r}",
            hint="keys are the long option names, e.g. rate = 2.5; `retailpulse config` lists them",
        )
    return data


MAX_CONFIG_BYTES = 1 << 20  # a config file is a few lines; past this, the wrong file


def _read_small_file(path: Path) -> bytes:
    """The bytes of a regular file of at most MAX_CONFIG_BYTES. Anything else is refused
    before it is read: /dev/zero never ends, and opening a FIFO waits for a writer (hence
    O_NONBLOCK, which a regular file ignores)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ConfigError(f"{path}: is a directory, not a config file")
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{path}: not a regular file (a config file is a TOML file)")
        data = fh.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: over 1 MiB; not a config file")
    return data


def resolve(
    flags: Mapping[str, Any],
    *,
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    stored: Mapping[str, Any] | None = None,
    only: set[str] | None = None,
) -> Resolved:
    """Flag > environment > config file > the job's stored settings > default.

    `flags` maps dest -> value given on the command line (None = not given); `stored` is
    a resumed job's settings (the config file speaks for tonight's runs, so it wins)."""
    env = os.environ if env is None else env
    path, must_exist = config_path(config_file, env)
    from_file = read_config(path, must_exist)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for opt in OPTIONS:
        if only is not None and opt.dest not in only:
            continue
        given = flags.get(opt.dest)
        if given is not None and not (opt.switch and given is False):
            values[opt.dest], sources[opt.dest] = _checked(opt, given, f"--{opt.name}"), "flag"
        elif opt.env in env and not (opt.switch and env[opt.env] == ""):
            # set but empty is refused as from a flag or the file (one rule for all
            # three); for a switch, empty means off, as `0` does
            values[opt.dest] = _checked(opt, env[opt.env], opt.env)
            sources[opt.dest] = f"env {opt.env}"
        elif opt.name in from_file:
            values[opt.dest] = _checked(opt, from_file[opt.name], f"{path}: key {opt.name!r}")
            sources[opt.dest] = f"config {path}"
        elif stored is not None and _stored_value(opt, stored) is not None:
            values[opt.dest], sources[opt.dest] = _stored_value(opt, stored), "job"
        elif opt.default is not None:
            values[opt.dest], sources[opt.dest] = opt.default, "default"
    return Resolved(values, sources, path if from_file else None)


def _checked(opt: Option, raw: object, where: str) -> Any:
    if isinstance(raw, str) and not raw.strip():
        raise ConfigError(
            f"{where}: an empty value is not valid for --{opt.name}",
            hint="give a value, or leave the option out to use the default",
        )
    try:
        return opt.convert(raw)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {_show(raw)} is not valid for --{opt.name}: {exc}") from None


def _show(raw: object) -> str:
    if isinstance(raw, str):  # a URL's password is not repeated back (--results-db)
        from retailpulse_cli.text.redaction import redact

        raw = redact(raw)
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."


def _stored_value(opt: Option, stored: Mapping[str, Any]) -> Any:
    """Settings kept in a job's meta.json use Settings field names."""
    if opt.dest == "no_local_files":
        allow = stored.get("allow_local_files")
        return None if allow is None else not allow
    if opt.dest == "per_host" and not _per_host_was_given(stored):
        return None  # it followed the job's --downloads: let it follow this run's
    value = stored.get(opt.dest)
    if opt.dest == "gpu_delay" and isinstance(value, list):
        return tuple(value)
    return value


def _per_host_was_given(stored: Mapping[str, Any]) -> bool:
    given = stored.get("per_host_given")
    if isinstance(given, bool):
        return given
    # a job from before `per_host_given` was kept: a per-host equal to its downloads is
    # what it got by default (one set to the same number meant no more than that either)
    return stored.get("per_host") != stored.get("downloads")


def settings_from(resolved: Resolved) -> Settings:
    """The frozen Settings for a run; --per-host follows --downloads unless set."""
    from retailpulse_cli.config.settings import Settings

    fields = set(Settings.__dataclass_fields__)
    values = {k: v for k, v in resolved.values.items() if k in fields}
    if "no_local_files" in resolved.values:
        values["allow_local_files"] = not resolved.values["no_local_files"]
    # a host may take as many connections as we open downloads, unless --per-host says less
    values["per_host_given"] = "per_host" in values
    values.setdefault("per_host", values["downloads"])
    try:
        return Settings(**values)
    except ValueError as exc:
        raise ConfigError(f"invalid settings: {exc}") from None


FOLLOWS_DOWNLOADS = "as --downloads"  # the source `config` names for an unset --per-host


def describe(
    resolved: Resolved, decided: Mapping[str, object] | None = None
) -> list[dict[str, Any]]:
    """Rows for `retailpulse config`: every option, the value in force and where it came
    from. `decided`: the values of options whose default is decided elsewhere (the jobs
    dir, the shipped store master), shown instead of nothing."""
    rows = []
    in_force = {**(decided or {}), **resolved.values}
    sources = dict(resolved.sources)
    if "per_host" not in resolved.values and "downloads" in resolved.values:
        in_force["per_host"], sources["per_host"] = resolved.values["downloads"], FOLLOWS_DOWNLOADS
    for opt in OPTIONS:
        value = in_force.get(opt.dest)
        if isinstance(value, Path):
            value = str(value)
        if isinstance(value, str):  # e.g. --save-images s3://KEY:SECRET@bucket
            from retailpulse_cli.text.redaction import redact

            value = redact(value)
        elif isinstance(value, tuple):
            value = list(value)
        rows.append(
            {
                "option": opt.name,
                "value": value,
                "source": sources.get(opt.dest, "default"),
                "env": opt.env,
            }
        )
    return rows
