"""How `--mode real` reaches a host: over SSH (`ssh: user@addr`, or a name from an ssh_config), with
`sudo -n` unless the user is root, or, for a host emulated on this machine (the test of the Vagrant
lab's configuration), by entering its network namespace (`netns: NAME`). Either way a command is an
argv run on that host; nothing else of the front end knows which."""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass, field


class RealError(RuntimeError):
    """Something of the real lab is not as the inventory says: reported as one line, no traceback."""


class HostCommandError(RealError):
    pass


@dataclass(frozen=True)
class HostAccess:
    name: str
    ssh: str | None = None
    netns: str | None = None
    ssh_options: tuple[str, ...] = field(default_factory=tuple)

    def argv(self, command: list[str]) -> list[str]:
        """`command` as a local argv that runs it on the host."""
        if self.netns:
            # the network namespace only: a container namespace `vrs plug` makes (a bind mount under
            # /var/run/netns) must outlive the command, which a private mount namespace would not let it
            return ["nsenter", f"--net=/var/run/netns/{self.netns}", *command]
        user = self.ssh.split("@")[0] if "@" in self.ssh else ""
        remote = shlex.join(command if user == "root" else ["sudo", "-n", *command])
        return ["ssh", "-o", "BatchMode=yes", *self.ssh_options, self.ssh, remote]

    def run(self, command: list[str], timeout: float = 60.0) -> str:
        """Run `command` on the host; its stdout. Raises HostCommandError with its stderr."""
        try:
            r = subprocess.run(self.argv(command), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise HostCommandError(f"{self.name}: {shlex.join(command)}: no answer in {timeout:.0f}s") from None
        if r.returncode:
            raise HostCommandError(f"{self.name}: {shlex.join(command)}: {(r.stderr or r.stdout).strip()}")
        return r.stdout

    def spawn(self, command: list[str]) -> subprocess.Popen:
        """A long-running `command` on the host, talking over its stdin and stdout (the prober)."""
        return subprocess.Popen(self.argv(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, bufsize=1)

    def describe(self) -> str:
        return f"netns {self.netns}" if self.netns else f"ssh {self.ssh}"
