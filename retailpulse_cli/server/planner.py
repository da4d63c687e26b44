"""Run settings for the service's jobs: the CLI's option table (flags, RETAILPULSE_*,
the config file), a resumed job's stored settings beneath them, and the network safety
rules of jobs from the network on top of all."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from retailpulse_cli.config import options
from retailpulse_cli.config.serve_settings import ServeSettings
from retailpulse_cli.config.settings import Settings
from retailpulse_cli.jobs import lifecycle
from retailpulse_cli.jobs.dispatcher import RunPlan
from retailpulse_cli.storage import store_master
from retailpulse_cli.storage.job_dir import Job


class OptionPlanner:
    """`Planner` for `Dispatcher`: what `submit` and `resume` would use, made safe."""

    def __init__(
        self, flags: Mapping[str, Any], config_file: Path | None, serve: ServeSettings
    ) -> None:
        self.flags = dict(flags)
        self.config_file = config_file
        self.serve = serve
        self._masters: dict[Path, store_master.StoreMaster] = {}
        self._lock = threading.Lock()
        resolved = options.resolve(self.flags, config_file=config_file)
        master = self._master(resolved.get("store_master"))
        self._new = RunPlan(self.safe(options.settings_from(resolved)), master)

    def for_new(self) -> RunPlan:
        return self._new

    def for_job(self, job: Job) -> RunPlan:
        """A job resumed or retried: its stored settings, overridden by ours."""
        stored = lifecycle.stored_settings(job)
        resolved = options.resolve(self.flags, config_file=self.config_file, stored=stored)
        given = resolved.get("store_master") or lifecycle.stored_store_master(job)
        return RunPlan(self.safe(options.settings_from(resolved)), self._master(given))

    def safe(self, settings: Settings) -> Settings:
        """No local files and no private addresses, unless the operator allowed them."""
        changes: dict[str, Any] = {}
        if not self.serve.allow_local_files:
            changes["allow_local_files"] = False
        if not self.serve.allow_private_networks:
            changes["block_private_networks"] = True
        return dataclasses.replace(settings, **changes)

    def _master(self, path: Path | None) -> store_master.StoreMaster:
        resolved = store_master.resolve_path(path)
        with self._lock:  # loaded once per file: runner threads share it
            if resolved not in self._masters:
                self._masters[resolved] = store_master.load(resolved)
            return self._masters[resolved]
