"""Another VSD's committed changes put into this one's memory (a cluster, `vsd.cluster`): the same
replay that rebuilds the directory after a restart, one change at a time, then the placements the
replay leaves to the end of a restart (a VM is listed under the vports of its interfaces)."""

from __future__ import annotations

import orjson

from vsd.auth import Auth
from vsd.change import Change
from vsd.directory import Directory
from vsd.rules import place_vm


class Replica:
    def __init__(self, directory: Directory, auth: Auth) -> None:
        self.dir, self.auth = directory, auth

    def _forget_keys(self, user_id: str) -> None:
        """A new password (or no user) ends the API keys the old one handed out on this VSD too; the
        VSD that took the change already dropped them from the database."""
        for digest in self.auth.by_user.pop(user_id, ()):
            self.auth.keys.pop(digest, None)

    def root_changed(self, stored: str | None) -> None:
        """Another VSD set the CSP root's password (`PUT /me`, or started with a new --root-password)."""
        if not stored:
            return
        root = {k: v for k, v in orjson.loads(stored).items() if k != "apikey"}
        if root != self.auth.root:
            self.auth.root = root
            self._forget_keys(root["id"])

    @property
    def revision(self) -> int:
        return self.dir.revision

    def apply(self, changes: list[Change]) -> list[Change]:
        """Applies the changes this VSD does not have yet; returns those."""
        tree = self.dir.tree
        applied = []
        for ch in changes:
            if ch.rev <= self.dir.revision:
                continue  # this VSD's own change, or one already applied
            if ch.rev != self.dir.revision + 1:
                raise RuntimeError(f"revision {ch.rev} follows {self.dir.revision}: a gap in the log")
            old = tree.get(ch.oid)
            secret = orjson.dumps(ch.secret).decode() if ch.secret else None
            self.dir.load(ch.op, ch.kind, orjson.loads(ch.entity), ch.members, secret, ch.created)
            if ch.kind == "user" and old is not None and (ch.op == "DELETE" or old.secret != ch.secret):
                self._forget_keys(ch.oid)
            vm = tree.get(ch.parent or "") if ch.kind == "vminterface" else tree.get(ch.oid)
            if vm is not None and vm.kind == "vm":
                tree._unindex(vm)
                place_vm(tree, vm)
                tree._index(vm)
            self.dir.revision = ch.rev
            applied.append(ch)
        return applied
