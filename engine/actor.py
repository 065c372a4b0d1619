"""Who is acting: resolved by the caller (web, CLI, worker), so the engine never looks a user up."""

from dataclasses import dataclass
from dataclasses import field

# "integration": a machine account (a CRM, a payment system) that only sends messages and signals to processes.
ROLES = ("admin", "designer", "manager", "lawyer", "accountant", "supervisor", "auditor", "integration")


@dataclass(frozen=True)
class Actor:
    username: str
    roles: frozenset[str] = field(default_factory=frozenset)
    groups: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def system(cls, name: str = "system") -> "Actor":
        """The engine itself, the scheduler or a worker acting on a process's behalf."""
        return cls(username=name, roles=frozenset({"admin"}))

    def has_role(self, *roles: str) -> bool:
        return any(role in self.roles for role in roles)
