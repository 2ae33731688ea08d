"""Generate and change a small Debian-like archive: ``pool/`` with .deb files, ``dists/`` with
``Packages`` indexes that list them (name, size, SHA256) and ``Release``/``InRelease``.

Deterministic for a given seed, so tests can predict every file.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

SUITE = "stable"
COMPONENTS = ("main", "contrib")
ARCHES = ("amd64", "arm64")


@dataclass(frozen=True)
class TreeChange:
    added: list[str]
    changed: list[str]
    removed: list[str]


def _payload(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


def _pool_path(component: str, name: str, version: int, arch: str) -> str:
    return f"pool/{component}/{name[0]}/{name}/{name}_{version}_{arch}.deb"


class PublishedTree:
    """A generated upstream tree that publishes in numbered serials, each file stamped with
    its serial's publish time."""

    def __init__(self, root: Path, seed: int = 1) -> None:
        self.root = Path(root)
        self.rng = random.Random(seed)
        self.serial = 0
        # Each publish is stamped an hour after the previous one, as a real archive's would be:
        # rsync's quick check compares size and mtime, and two publishes within one second at
        # the same size would look unchanged.
        self._epoch = int(time.time()) - 30 * 86400

    @property
    def publish_time(self) -> int:
        return self._epoch + 3600 * self.serial

    def _write(self, rel: str, data: bytes) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (self.publish_time, self.publish_time))


class DebianLikeTree(PublishedTree):
    def pool_files(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in (self.root / "pool").rglob("*.deb"))

    def create(self, packages: int = 1000, min_size: int = 200, max_size: int = 12000) -> None:
        """``packages`` source packages, one .deb per arch, then the indexes (publish 1)."""
        self.serial = 1
        for i in range(packages):
            component = COMPONENTS[i % len(COMPONENTS)]
            name = f"pkg{i:05d}"
            for arch in ARCHES:
                data = _payload(self.rng, self.rng.randint(min_size, max_size))
                self._write(_pool_path(component, name, 1, arch), data)
        self.write_indexes()

    def mutate(self, add: int = 50, change: int = 30, remove: int = 40) -> TreeChange:
        """New packages, new versions of some (old .deb replaced), and removals; new indexes."""
        self.serial += 1  # this publish
        files = self.pool_files()
        picked = self.rng.sample(files, min(len(files), change + remove))
        changed, removed = picked[:change], picked[change:]
        for rel in removed:
            (self.root / rel).unlink()
        for rel in changed:
            self._write(rel, _payload(self.rng, self.rng.randint(200, 12000)))
        added = []
        for i in range(add):
            name = f"new{self.serial:03d}x{i:04d}"  # unique per mutation
            rel = _pool_path(COMPONENTS[i % 2], name, 1, ARCHES[i % 2])
            self._write(rel, _payload(self.rng, self.rng.randint(200, 12000)))
            added.append(rel)
        self.write_indexes()
        return TreeChange(added=added, changed=changed, removed=removed)

    def write_indexes(self) -> None:
        """Packages (+ .gz) per component/arch, Release with their checksums, InRelease, trace."""
        dists = f"dists/{SUITE}"
        release_entries: list[tuple[str, str, int]] = []
        for component in COMPONENTS:
            for arch in ARCHES:
                stanzas = []
                for rel in self.pool_files():
                    if f"/{component}/" not in f"/{rel}" or not rel.endswith(f"_{arch}.deb"):
                        continue
                    data = (self.root / rel).read_bytes()
                    name = rel.rsplit("/", 2)[1]
                    stanzas.append(
                        f"Package: {name}\nArchitecture: {arch}\nFilename: {rel}\n"
                        f"Size: {len(data)}\nSHA256: {hashlib.sha256(data).hexdigest()}\n")
                text = "\n".join(stanzas).encode()
                base = f"{component}/binary-{arch}/Packages"
                for suffix, blob in (("", text), (".gz", gzip.compress(text, mtime=0))):
                    self._write(f"{dists}/{base}{suffix}", blob)
                    release_entries.append((f"{base}{suffix}", hashlib.sha256(blob).hexdigest(),
                                            len(blob)))
        stamp = time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime())
        release = (f"Origin: Mirrorkeeper demo\nSuite: {SUITE}\nDate: {stamp}\n"
                   f"Serial: {self.serial}\nSHA256:\n"
                   + "".join(f" {h} {n:>8} {p}\n" for p, h, n in release_entries))
        self._write(f"{dists}/Release", release.encode())
        self._write(f"{dists}/InRelease", b"-----BEGIN PGP SIGNED MESSAGE-----\n\n"
                    + release.encode())
        self._write("project/trace/master",
                    f"{time.strftime('%a %b %d %H:%M:%S UTC %Y', time.gmtime())}\n"
                    f"Archive serial: {self.serial}\n".encode())
