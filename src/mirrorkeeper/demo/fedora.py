"""Generate and change a Fedora-like tree of several modules, with hard links between them, and
write its ``fullfiletimelist-*`` the way Fedora's ``create-filelist`` does.

Two module directories under one root, as a tier-1 ``fedora-buffet`` serves them: ``fedora/``
(releases and updates) and ``epel/``; some EPEL packages are hard links to Fedora ones. Files
are tiny (a few dozen bytes) so that 100,000 of them take seconds, not minutes. Deterministic
for a given seed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..filelist.format import Entry, render
from .tree import PublishedTree

MODULES = ("fedora", "epel")


def list_name(module: str) -> str:
    return f"fullfiletimelist-{module}"


@dataclass(frozen=True)
class Publish:
    added: list[str]
    changed: list[str]
    removed: list[str]


class FedoraLikeTree(PublishedTree):
    def _payload(self, path: str) -> bytes:
        return f"{path} {self.serial} {self.rng.random()}\n".encode()

    def _write(self, rel: str, data: bytes | None = None) -> None:
        super()._write(rel, self._payload(rel) if data is None else data)

    def _repo(self, base: str, count: int, linked_from: list[str] | None = None) -> list[str]:
        """A repository of ``count`` packages under ``base`` (Packages/<letter>/…, repodata/)."""
        made: list[str] = []
        for i in range(count):
            name = f"pkg{i:06d}-1.{self.serial}.noarch.rpm"
            rel = f"{base}/Packages/{chr(97 + i % 26)}/{name}"
            if linked_from and i < len(linked_from):
                target = self.root / linked_from[i]
                path = self.root / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                os.link(target, path)
            else:
                self._write(rel)
            made.append(rel)
        self.write_repodata(base)
        return made

    def write_repodata(self, base: str) -> None:
        """``repodata/`` that names every package of the repository (the index: stage 2)."""
        packages = sorted(p.name for p in (self.root / base / "Packages").rglob("*.rpm"))
        primary = "\n".join(packages).encode()
        digest = hashlib.sha256(primary).hexdigest()
        for old in (self.root / base / "repodata").glob("*-primary.xml"):
            old.unlink()
        self._write(f"{base}/repodata/{digest}-primary.xml", primary)
        self._write(f"{base}/repodata/repomd.xml",
                    f"<repomd><revision>{self.serial}</revision><data href=\"{digest}"
                    f"-primary.xml\"/></repomd>\n".encode())

    def create(self, files: int = 2000) -> None:
        """About ``files`` files: 60% Fedora (release and updates), 40% EPEL, a quarter of
        EPEL hard links to Fedora packages; then the file lists."""
        fedora = files * 6 // 10
        release = self._repo("fedora/releases/40/Everything/x86_64/os", fedora * 2 // 3)
        self._repo("fedora/updates/40/Everything/x86_64", fedora - fedora * 2 // 3)
        epel = files - fedora
        self._repo("epel/9/Everything/x86_64", epel, linked_from=release[:epel // 4])
        self._write("fedora/README", b"Fedora\n")
        os.symlink("releases/40", self.root / "fedora/latest")
        self.write_lists()

    def repos(self) -> list[str]:
        return sorted(str(p.parent.relative_to(self.root))
                      for p in self.root.rglob("repodata"))

    def packages(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*.rpm"))

    def publish(self, fraction: float = 0.01, *, remove: int | None = None,
                add: int | None = None) -> Publish:
        """One update: ``fraction`` of the packages rewritten (a new size), ``add`` new ones
        and ``remove`` dropped (each default: as many as rewritten); repodata and the lists
        rewritten."""
        self.serial += 1
        packages = [p for p in self.packages() if "/repodata/" not in p]
        count = max(1, int(len(packages) * fraction))
        remove = count if remove is None else remove
        picked = self.rng.sample(packages, min(len(packages), count + remove))
        changed, removed = picked[:count], picked[count:count + remove]
        for rel in changed:
            (self.root / rel).unlink()  # a new inode: the upstream replaces, never edits
            self._write(rel, self._payload(rel) + b"updated\n")
        for rel in removed:
            (self.root / rel).unlink()
        added = []
        for i in range(count if add is None else add):
            rel = f"fedora/updates/40/Everything/x86_64/Packages/n/new{self.serial:03d}-{i:05d}.rpm"
            self._write(rel)
            added.append(rel)
        for repo in self.repos():
            self.write_repodata(repo)
        self.write_lists()
        return Publish(added=added, changed=changed, removed=removed)

    def rename(self, old: str, new: str) -> None:
        """A directory renamed upstream (its inodes, and their hard links, stay)."""
        self.serial += 1
        os.rename(self.root / old, self.root / new)
        os.utime(self.root / new, (self.publish_time, self.publish_time))
        self.write_lists()

    def write_lists(self) -> None:
        for module in MODULES:
            write_filelist(self.root / module, list_name(module), self.publish_time)

    def copy_to(self, dest: Path) -> None:
        shutil.copytree(self.root, dest, symlinks=True)


def write_filelist(top: Path, name: str, when: int | None = None) -> Path:
    """``create-filelist -c -s -d TOP -t TOP/NAME``: every entry under ``top`` but the lists at
    its top and ``.~tmp~``, as time (max of mtime and ctime), type, size and path; SHA1 of
    each ``repomd.xml``; ``[End]`` last."""
    entries: dict[str, Entry] = {}
    sums: dict[str, str] = {}
    pending = [""]
    while pending:
        relative = pending.pop()
        with os.scandir(top / relative if relative else top) as it:
            found = sorted(it, key=lambda e: e.name)
        for entry in found:
            path = f"{relative}/{entry.name}" if relative else entry.name
            if entry.name == ".~tmp~" or (not relative and entry.name.startswith(
                    "fullfiletimelist-")):
                continue
            info = entry.stat(follow_symlinks=False)
            kind = "l" if entry.is_symlink() else "d" if entry.is_dir() else "f"
            entries[path] = Entry(int(max(info.st_mtime, info.st_ctime)), kind, info.st_size)
            if kind == "d":
                pending.append(path)
            elif entry.name == "repomd.xml":
                sums[path] = hashlib.sha1((top / path).read_bytes()).hexdigest()
    target = top / name
    temporary = target.with_name(name + ".new")
    temporary.write_text(render(entries, sums))
    os.replace(temporary, target)
    if when is not None:
        os.utime(target, (when, when))
    return target
