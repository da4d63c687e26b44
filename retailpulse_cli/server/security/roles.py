"""Roles, the caller they belong to, and what each role may do with whose job."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Role(str, Enum):
    """Ordered: each role may do everything the one before it may."""

    VIEWER = "viewer"  # read its own jobs
    SUBMITTER = "submitter"  # also submit, retry and cancel its own jobs
    ADMIN = "admin"  # everything, every user's jobs

    @property
    def rank(self) -> int:
        return ROLE_ORDER.index(self)

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


ROLE_ORDER: tuple[Role, ...] = (Role.VIEWER, Role.SUBMITTER, Role.ADMIN)
ROLE_NAMES: tuple[str, ...] = tuple(r.value for r in ROLE_ORDER)


def parse_role(text: object) -> Role | None:
    """A role name (any case) as a Role; None for anything else."""
    if not isinstance(text, str):
        return None
    try:
        return Role(text.strip().lower())
    except ValueError:
        return None


class Action(str, Enum):
    """What a request does; each needs a least role (`NEEDS`)."""

    READ = "read"
    SUBMIT = "submit"
    RETRY = "retry"
    CANCEL = "cancel"


NEEDS: dict[Action, Role] = {
    Action.READ: Role.VIEWER,
    Action.SUBMIT: Role.SUBMITTER,
    Action.RETRY: Role.SUBMITTER,
    Action.CANCEL: Role.SUBMITTER,
}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the name jobs are recorded under (a token's name or a
    JWT's `sub`), its role, and how it proved who it is."""

    name: str
    role: Role
    via: str  # "token", "jwt", "cookie" or "open" (--no-auth)

    def may(self, action: Action) -> bool:
        return self.role.at_least(NEEDS[action])

    def sees(self, owner: object) -> bool:
        """Whether this caller may know a job of `owner` exists: its own, or any for admin.
        A job with no recorded owner (made by the CLI, or before owners) is the admin's."""
        return self.role is Role.ADMIN or (isinstance(owner, str) and owner == self.name)

    @property
    def sees_all(self) -> bool:
        return self.role is Role.ADMIN


# --no-auth: one caller, with every right, as the open server had before authentication
OPEN_PRINCIPAL = Principal(name="anonymous", role=Role.ADMIN, via="open")
