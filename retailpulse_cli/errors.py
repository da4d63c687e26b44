"""One error hierarchy and the one exit-code table shared by every command."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes; the README and `--help` print this table."""

    OK = 0
    JOB_FAILED = 1  # the job ran to the end but some store or image failed
    USAGE = 2  # bad command-line usage (unknown option, missing argument)
    INVALID_INPUT = 3  # the job file is unreadable, not JSON, or breaks the format
    STORE_MASTER = 4  # the store master is missing, unreadable or has no store-id column
    NOT_FOUND = 5  # no such job id in the jobs directory
    BUSY = 6  # another process is working on this job
    STORAGE = 7  # the jobs directory cannot be written or a job directory is damaged
    WAIT_TIMEOUT = 8  # `status --wait --timeout` gave up before the job ended
    INTERNAL = 70  # a bug: please report it with the log
    INTERRUPTED = 130  # stopped by Ctrl-C (SIGINT), or the job was interrupted
    TERMINATED = 143  # stopped by SIGTERM


EXIT_CODE_HELP: dict[ExitCode, str] = {
    ExitCode.OK: "success (job completed)",
    ExitCode.JOB_FAILED: "job finished `failed` (unknown store or failed image)",
    ExitCode.USAGE: "bad command-line usage",
    ExitCode.INVALID_INPUT: "invalid job file",
    ExitCode.STORE_MASTER: "store master missing, unreadable or without a store-id column",
    ExitCode.NOT_FOUND: "job id not found",
    ExitCode.BUSY: "job is busy (another process holds its lock)",
    ExitCode.STORAGE: (
        "jobs directory not writable, disk full, or job directory damaged; "
        "a `--log-file` that cannot be opened"
    ),
    ExitCode.WAIT_TIMEOUT: "`status --wait` timed out",
    ExitCode.INTERNAL: "internal error (a bug)",
    ExitCode.INTERRUPTED: "interrupted by Ctrl-C / SIGINT, or job found interrupted or cancelled",
    ExitCode.TERMINATED: "terminated by SIGTERM",
}


class RetailpulseError(Exception):
    """Base of every error the CLI turns into one line and an exit code."""

    exit_code: ExitCode = ExitCode.INTERNAL
    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint


class InvalidJobFile(RetailpulseError):
    """The job file cannot be used; `problems` lists every problem found, with its JSON path."""

    exit_code = ExitCode.INVALID_INPUT
    hint = "fix the job file and submit it again (`retailpulse schema` prints the format)"

    def __init__(self, source: str, problems: list[str], *, hint: str | None = None) -> None:
        self.source = source
        self.problems = problems
        if len(problems) == 1:
            msg = f"{source}: {problems[0]}"
        else:
            msg = f"{source}: {len(problems)} problems: " + "; ".join(problems)
        super().__init__(msg, hint=hint)


class StoreMasterError(RetailpulseError):
    exit_code = ExitCode.STORE_MASTER
    hint = "pass --store-master PATH or set RETAILPULSE_STORE_MASTER"


class JobNotFound(RetailpulseError):
    exit_code = ExitCode.NOT_FOUND
    hint = "`retailpulse list` shows the jobs; --jobs-dir picks another jobs directory"


class JobBusy(RetailpulseError):
    exit_code = ExitCode.BUSY
    hint = "wait for the other run to finish (`retailpulse status --wait JOB_ID`)"


class StorageError(RetailpulseError):
    exit_code = ExitCode.STORAGE
    hint = "check the path's permissions and free space, or pick another --jobs-dir"


class JobDamaged(RetailpulseError):
    exit_code = ExitCode.STORAGE
    hint = (
        "the job directory was edited or partly deleted: restore the file, "
        "or submit the job file again"
    )


class WaitTimeout(RetailpulseError):
    exit_code = ExitCode.WAIT_TIMEOUT
    hint = "the job goes on; wait again or raise --timeout"


class ConfigError(RetailpulseError):
    """A bad option value, wherever it came from (flag, variable, config file)."""

    exit_code = ExitCode.USAGE
    hint = "`retailpulse config` shows every setting and where it comes from"
