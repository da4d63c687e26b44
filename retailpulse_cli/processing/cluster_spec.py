"""What `--cluster` names: this process, a local Dask cluster, or a Dask scheduler; checked
before any job is made. Imports nothing of Dask (`require_dask` only tries to)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from retailpulse_cli.errors import ExitCode, RetailpulseError
from retailpulse_cli.text.redaction import redact

# `retailpulse[dask]` names the published package; in a checkout pip needs the folder
INSTALL_HINT = "pip install 'retailpulse[dask]' (in a checkout: pip install -e '.[dask]')"


class ClusterError(RetailpulseError):
    """The cluster named by --cluster cannot be used (extra missing, unreachable, mismatch).
    Exit code 2 (usage): like a bad flag, it is fixed by changing the command or the
    installation, and no image was processed."""

    exit_code = ExitCode.USAGE
    hint = "use --cluster local (the default) to run in this process"


@dataclass(frozen=True)
class ClusterSpec:
    """'local' (this process), 'local:N' (N Dask worker processes here) or a scheduler."""

    kind: str  # "local", "local-cluster" or "scheduler"
    workers: int = 0
    address: str = ""

    @property
    def is_dask(self) -> bool:
        return self.kind != "local"


def parse_cluster(text: str | None) -> ClusterSpec:
    """'local' | 'local:N' | 'tcp://HOST:PORT'; None or '' mean local."""
    value = (text or "local").strip()
    if value == "local":
        return ClusterSpec("local")
    if value.startswith("local:"):
        count = value.split(":", 1)[1]
        if not count.isdigit() or not 1 <= int(count) <= 256:
            raise ClusterError(
                f"--cluster {value!r}: N in local:N must be a number of worker processes "
                "from 1 to 256",
                hint="e.g. --cluster local:2",
            )
        return ClusterSpec("local-cluster", workers=int(count))
    if value.startswith("tcp://"):
        return ClusterSpec("scheduler", address=_scheduler_address(value))
    if value.startswith("tls://"):
        # Dask's tls:// needs a certificate, a key and a CA (a `Security` object) that
        # no flag of ours passes on: refused here rather than failing inside Dask.
        raise ClusterError(
            f"--cluster {redact(value)!r}: tls:// scheduler addresses are not supported "
            "(retailpulse cannot pass Dask the certificates they need)",
            hint="use tcp://HOST:PORT, over a VPN or an SSH tunnel if the network is untrusted",
        )
    raise ClusterError(
        f"--cluster {redact(value)!r}: use local, local:N or tcp://HOST:PORT (a Dask scheduler)",
        hint="e.g. --cluster local:2 or --cluster tcp://10.0.0.5:8786",
    )


def _scheduler_address(value: str) -> str:
    """`value` (tcp://...) checked the way Dask will read it: a host, a port from 1 to
    65535 and nothing else. A user:password@ part is refused without being echoed: Dask
    has no use for it and would print it in its own errors."""
    from urllib.parse import urlsplit

    example = "e.g. --cluster tcp://10.0.0.5:8786 (IPv6: tcp://[::1]:8786)"
    if "@" in value:
        raise ClusterError(
            "--cluster: a Dask scheduler address cannot carry a user name or password "
            "(user:password@ before the host); give tcp://HOST:PORT",
            hint=example,
        )
    shown = repr(value)
    try:
        parts = urlsplit(value)
        host, port = parts.hostname, parts.port
    except ValueError as exc:  # "[::1" (unclosed IPv6 bracket), a port not a number
        raise ClusterError(
            f"--cluster {shown}: not a scheduler address ({exc})", hint=example
        ) from None
    if not host or port is None or not 1 <= port <= 65535:
        raise ClusterError(
            f"--cluster {shown}: a scheduler address needs a host and a port from 1 to 65535 "
            "(tcp://HOST:PORT)",
            hint=example,
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ClusterError(
            f"--cluster {shown}: a scheduler address is only tcp://HOST:PORT, nothing after "
            "the port",
            hint=example,
        )
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


def require_dask(*, load: bool = False) -> None:
    """Fail with one line naming the install command when the `dask` extra is missing.
    Without `load` the package is only looked for: importing it takes about a second, which
    `DaskEngine.open` spends while its worker processes start."""
    try:
        if not load:
            if importlib.util.find_spec("distributed") is None:
                raise ImportError("No module named 'distributed'")
            return
        import distributed  # noqa: F401
    except ImportError as exc:
        raise ClusterError(
            f"--cluster needs Dask distributed, which is not installed ({exc})",
            hint=f"install it with: {INSTALL_HINT}",
        ) from None
