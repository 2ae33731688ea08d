"""A real apt repository, an HTTP server for a mirror of it, and apt-get clients that keep
fetching from that mirror: the harness for "does any apt client ever fail while the mirror is
being synced?".

Nothing is simulated. The .debs come from ``dpkg-deb``, the indexes and Release from
``apt-ftparchive``, InRelease is clearsigned with a throwaway gpg key, and the clients are
``apt-get`` processes that verify that signature (``signed-by``, not ``trusted=yes``) and every
hash it vouches for, exactly as a user's machine would.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import random
import re
import shutil
import subprocess
import tempfile
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

SUITE = "stable"
COMPONENT = "main"
#: Every package is ``Architecture: all``, so the only index is binary-all (apt on an amd64
#: host reads it; a binary-amd64 index would only repeat it).
INDEX_DIR = f"dists/{SUITE}/{COMPONENT}/binary-all"
TRACE = "project/trace/master"
TOOLS = ("dpkg-deb", "apt-ftparchive", "apt-get", "gpg", "gpgconf")


def missing_tools() -> list[str]:
    """The tools this harness runs that are not installed (tests skip rather than fail)."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _run(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a tool, raising with its stderr (not just the exit status) when it fails."""
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def _rfc1123(stamp: int) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime(stamp))


@dataclass(frozen=True)
class Publish:
    """What one publish changed in the repository (paths relative to its root)."""

    serial: int
    version: int
    #: The mtime every file this publish wrote carries (epoch seconds).
    time: int
    added: list[str]
    removed: list[str]
    #: Index and metadata files (re)written: dists/ and the trace file.
    indexes: list[str]


class _Signer:
    """A throwaway gpg key in its own GNUPGHOME, so InRelease is signed as a real one is.

    gpg needs an agent for the secret key; it is stopped after every use so no process
    outlives a test, and the home (short, under /tmp: the agent's socket path is limited to
    about 100 characters) is removed by ``close()`` or when the object is collected.
    """

    def __init__(self, keyring: Path) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="mk-gnupg-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.home, True)
        self.env = {**os.environ, "GNUPGHOME": str(self.home)}
        self._gpg("--quick-gen-key", "Mirrorkeeper test archive <archive@mirrorkeeper.invalid>",
                  "ed25519", "sign", "never")
        keyring.parent.mkdir(parents=True, exist_ok=True)
        self._gpg("--output", str(keyring), "--export")

    def _gpg(self, *args: str) -> None:
        try:
            _run(["gpg", "--batch", "--quiet", "--yes", "--pinentry-mode", "loopback",
                  "--passphrase", "", *args], env=self.env)
        finally:
            subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=self.env, check=False,
                           capture_output=True)

    def clearsign(self, source: Path, dest: Path) -> None:
        self._gpg("--digest-algo", "SHA512", "--clearsign", "--output", str(dest), str(source))

    def detach_sign(self, source: Path, dest: Path) -> None:
        self._gpg("--digest-algo", "SHA512", "--armor", "--detach-sign", "--output", str(dest),
                  str(source))

    def close(self) -> None:
        self._cleanup()


class AptRepo:
    """A Debian-style archive in ``root``, the upstream tree an rsync daemon serves.

    Suite ``stable``, component ``main``, packages ``mkpkgNNN`` (``Architecture: all``) in
    ``pool/main/m/<name>/<name>_<version>_all.deb``. Each publish writes ``Packages`` (plain,
    .gz, .xz), ``Release`` (MD5Sum and SHA256, like Debian's) with the publish time as its
    Date, an ``InRelease`` clearsigned and a ``Release.gpg`` made with a throwaway key whose
    public half is ``keyring`` (outside ``root``, for the clients' ``signed-by``), and
    ``project/trace/master``. With ``by_hash`` (as Debian's archive has it) the indexes are
    also stored under ``by-hash/SHA256/<digest>`` and Release says ``Acquire-By-Hash: yes``, so
    a client holding an older InRelease can still fetch the indexes it names; old by-hash files
    are never pruned (a test's few publishes leave a few small files).

    Every file a publish writes gets the same mtime, an hour after the previous publish's, so
    rsync's size-and-mtime quick check always sees the change.
    """

    def __init__(self, root: Path, *, seed: int = 1, by_hash: bool = True) -> None:
        self.root = Path(root)
        self.keyring = self.root.parent / f"{self.root.name}-archive-keyring.gpg"
        self.seed = seed
        self.by_hash = by_hash
        self.serial = 0
        self._epoch = int(time.time()) - 30 * 86400
        self._signer = _Signer(self.keyring)

    @property
    def publish_time(self) -> int:
        return self._epoch + 3600 * self.serial

    @staticmethod
    def deb_path(name: str, version: int) -> str:
        return f"pool/{COMPONENT}/{name[0]}/{name}/{name}_{version}_all.deb"

    def pool_debs(self) -> list[str]:
        """Every .deb in the pool, listed in the index or not."""
        return sorted(str(p.relative_to(self.root)) for p in (self.root / "pool").rglob("*.deb"))

    def listed_debs(self) -> list[str]:
        """The .debs the current Packages index names (its ``Filename:`` fields)."""
        return parse_packages((self.root / INDEX_DIR / "Packages").read_text(), "Filename")

    def publish(self, version: int, packages: int = 200, *, keep_old: bool = False) -> Publish:
        """Make ``version`` of packages ``mkpkg000``.. the archive's content.

        The new .debs are built (in parallel: dpkg-deb is a subprocess), every .deb of another
        version is deleted from the pool unless ``keep_old`` (Debian's archive keeps superseded
        files for a while; a mirror that deletes them while clients still hold the old index
        breaks those clients however it syncs), then the indexes are rewritten.
        """
        self.serial += 1
        stamp = self.publish_time
        names = [f"mkpkg{i:03d}" for i in range(packages)]
        wanted = [self.deb_path(name, version) for name in names]
        before = set(self.pool_debs())
        added = [rel for rel in wanted if rel not in before]
        with (tempfile.TemporaryDirectory(prefix="mk-debs-") as build,
              ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool):
            jobs = [pool.submit(self._build_deb, Path(build), rel, version, stamp)
                    for rel in added]
            for job in jobs:
                job.result()
        removed = [] if keep_old else sorted(before - set(wanted))
        for rel in removed:
            path = self.root / rel
            path.unlink()
            if not any(path.parent.iterdir()):
                path.parent.rmdir()
        indexes = self._write_indexes(set(wanted), stamp)
        return Publish(serial=self.serial, version=version, time=stamp, added=added,
                       removed=removed, indexes=indexes)

    def _build_deb(self, build: Path, rel: str, version: int, stamp: int) -> None:
        name = Path(rel).parent.name
        rng = random.Random(f"{self.seed}:{name}:{version}")
        payload = rng.randbytes(rng.randint(2048, 12288))  # random: sizes and hashes differ
        src = build / name
        (src / "DEBIAN").mkdir(parents=True)
        data = src / "usr/share/mkpkg" / name
        data.mkdir(parents=True)
        (data / "payload.bin").write_bytes(payload)
        (src / "DEBIAN/control").write_text(
            f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
            "Maintainer: Mirrorkeeper tests <tests@mirrorkeeper.invalid>\n"
            f"Installed-Size: {len(payload) // 1024 + 1}\nSection: misc\nPriority: optional\n"
            f"Description: test package {name}, version {version}\n"
            " Built by tests/aptrepo.py for the apt consistency tests.\n")
        dest = self.root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        _run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", str(src), str(dest)],
             env={**os.environ, "SOURCE_DATE_EPOCH": str(stamp)})
        os.utime(dest, (stamp, stamp))

    def _write(self, rel: str, data: bytes, stamp: int) -> None:
        """Write through a temporary name and rename, as an archive's publisher does."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.new")
        tmp.write_bytes(data)
        os.utime(tmp, (stamp, stamp))
        tmp.replace(path)

    def _write_indexes(self, wanted: set[str], stamp: int) -> list[str]:
        hashes = ["-o", "APT::FTPArchive::SHA1=false", "-o", "APT::FTPArchive::SHA512=false"]
        # apt-ftparchive lists every .deb under pool/; the index names only this version's.
        scanned = _run(["apt-ftparchive", *hashes, "packages", "pool"], cwd=self.root)
        stanzas = [s.strip("\n") for s in scanned.split("\n\n") if s.strip()]
        kept = sorted((s for s in stanzas if parse_packages(s, "Filename")[0] in wanted),
                      key=lambda s: parse_packages(s, "Filename")[0])
        text = "".join(f"{s}\n\n" for s in kept).encode()
        written = []
        for suffix, blob in (("", text), (".gz", gzip.compress(text, 9, mtime=0)),
                             (".xz", lzma.compress(text))):
            rel = f"{INDEX_DIR}/Packages{suffix}"
            self._write(rel, blob, stamp)
            written.append(rel)
            if self.by_hash:
                rel = f"{INDEX_DIR}/by-hash/SHA256/{hashlib.sha256(blob).hexdigest()}"
                self._write(rel, blob, stamp)
                written.append(rel)

        dists = self.root / "dists" / SUITE
        fields = {"Origin": "Mirrorkeeper", "Label": "Mirrorkeeper test archive",
                  "Suite": SUITE, "Codename": SUITE, "Components": COMPONENT,
                  "Architectures": "all", "Date": _rfc1123(stamp),
                  "Description": "apt consistency test archive"}
        if self.by_hash:
            fields["Acquire-By-Hash"] = "yes"
        options = [*hashes, "-o", "APT::FTPArchive::Release::Default-Patterns=false",
                   "-o", "APT::FTPArchive::Release::Patterns::=Packages*"]
        for key, value in fields.items():
            options += ["-o", f"APT::FTPArchive::Release::{key}={value}"]
        release = _run(["apt-ftparchive", *options, "release", str(dists)])
        with tempfile.TemporaryDirectory(prefix="mk-release-") as scratch:
            plain = Path(scratch) / "Release"
            plain.write_text(release)
            self._signer.clearsign(plain, Path(scratch) / "InRelease")
            self._signer.detach_sign(plain, Path(scratch) / "Release.gpg")
            for name in ("Release", "Release.gpg", "InRelease"):
                rel = f"dists/{SUITE}/{name}"
                self._write(rel, (Path(scratch) / name).read_bytes(), stamp)
                written.append(rel)

        trace = (f"{time.strftime('%a %b %e %H:%M:%S UTC %Y', time.gmtime(stamp))}\n"
                 f"Date: {_rfc1123(stamp)}\nArchive serial: {self.serial}\n"
                 "Creator: tests/aptrepo.py\n")
        self._write(TRACE, trace.encode(), stamp)
        written.append(TRACE)
        return written

    def close(self) -> None:
        """Remove the signing key's GNUPGHOME (the public keyring stays for the clients)."""
        self._signer.close()

    def __enter__(self) -> AptRepo:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def parse_packages(text: str, field: str) -> list[str]:
    """The values of one field in a Packages index (or a single stanza of one)."""
    return re.findall(rf"^{re.escape(field)}: *(\S+)", text, re.MULTILINE)


class _QuietHandler(SimpleHTTPRequestHandler):
    # Keep-alive, as apt and real mirrors' servers use it; every response has a length.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm and the client's
    # delayed ACK every response would wait 40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """No access log on the test's stderr."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up mid-response is the client's business, not a traceback."""


class HttpMirror:
    """Serve ``root`` over HTTP on 127.0.0.1 (a free port) from a daemon thread.

    A plain static file server, as a mirror's web server is: it serves whatever is on disk at
    the moment of the request, so clients see the tree exactly as the sync leaves it.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> HttpMirror:
        self._server = _Server(("127.0.0.1", 0), partial(_QuietHandler, directory=str(self.root)))
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-mirror",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> HttpMirror:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class Failure(NamedTuple):
    """One apt-get run (or check) that went wrong, with the lines that say how."""

    client: int
    stage: str  #: "update", "download", "verify" or "harness"
    message: str


@dataclass(frozen=True)
class Iteration:
    """One client's ``apt-get update`` + download of every listed package."""

    client: int
    started: float  #: time.monotonic()
    finished: float
    listed: int  #: packages the client's index named
    downloaded: int  #: .debs apt-get fetched and verified
    failures: int


@dataclass(frozen=True)
class ClientsResult:
    iterations: int
    failures: list[Failure]
    runs: list[Iteration]

    @property
    def downloads(self) -> int:
        return sum(run.downloaded for run in self.runs)

    def between(self, start: float, end: float) -> list[Iteration]:
        """The iterations that overlapped [start, end] (monotonic times): proof that clients
        were really fetching while something (a sync) happened."""
        return [run for run in self.runs if run.started <= end and run.finished >= start]


#: Warnings that say nothing about the mirror. Everything else apt prints on W: counts.
BENIGN_WARNINGS = (
    re.compile(r"^W: Download is performed unsandboxed as root"),
)
_PROBLEM = re.compile(r"^(Err:|Ign:|E: |W: )")


def apt_problems(returncode: int, output: str) -> list[str]:
    """The problems in one apt-get run's output (stdout and stderr together), each with its
    indented detail lines.

    Strict on purpose: an ``Err:`` or ``Ign:`` line (a fetch that failed, even one apt then
    worked around by fetching another compression), any ``E:``, any ``W:`` but the benign ones
    (with ``signed-by`` a GPG warning is a real failure), and a non-zero exit with none of
    those. ``N:`` notes and progress lines do not count.
    """
    groups: list[list[str]] = []
    current: list[str] | None = None
    for line in output.splitlines():
        if current is not None and line.startswith(" "):
            current.append(line.strip())
            continue
        current = None
        if _PROBLEM.match(line) and not any(p.match(line) for p in BENIGN_WARNINGS):
            current = [line.strip()]
            groups.append(current)
    problems = [" | ".join(group) for group in groups]
    if returncode != 0 and not problems:
        problems.append(f"apt-get exited {returncode} and printed no error")
    return problems


#: Proxy settings from the environment would send the clients' requests elsewhere.
_PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


class AptClients:
    """``clients`` isolated apt-get clients, each in a thread, looping against ``url`` until
    ``stop()`` or ``max_seconds``: ``apt-get update``, then ``apt-get download`` of every
    package the fresh index names (into an emptied directory, so each .deb is fetched again
    and checked against the index's size and SHA256 by apt).

    Each client has its own directory and an ``APT_CONFIG`` file that is read before anything
    else and points every apt directory (config parts, sources, state, cache, logs) into it:
    nothing of the host's apt setup or state is read or written, and clients run concurrently
    as root (no locking; the download sandbox user is root, so pytest's 0700 tmp dirs work).
    The source line is ``deb [signed-by=<keyring>] <url> stable main``.
    """

    def __init__(self, url: str, keyring: Path, workdir: Path, clients: int = 4,
                 max_seconds: float = 300.0) -> None:
        self.url = url
        self.keyring = Path(keyring)
        self.workdir = Path(workdir)
        self.clients = clients
        self.max_seconds = max_seconds
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._runs: list[Iteration] = []
        self._failures: list[Failure] = []
        self._threads: list[threading.Thread] = []

    def _setup(self, index: int) -> tuple[Path, dict[str, str]]:
        home = self.workdir / f"client{index}"
        for sub in ("etc/apt.conf.d", "etc/sources.list.d", "etc/preferences.d",
                    "etc/trusted.gpg.d", "state/lists/partial", "cache/archives/partial", "log",
                    "download"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        (home / "status").touch()
        (home / "etc/sources.list").write_text(
            f"deb [signed-by={self.keyring}] {self.url} {SUITE} {COMPONENT}\n")
        settings = {
            "Dir::Etc": f"{home}/etc", "Dir::Etc::Main": f"{home}/etc/apt.conf",
            "Dir::Etc::Parts": f"{home}/etc/apt.conf.d",
            "Dir::Etc::SourceList": f"{home}/etc/sources.list",
            "Dir::Etc::SourceParts": f"{home}/etc/sources.list.d",
            "Dir::Etc::Preferences": f"{home}/etc/preferences",
            "Dir::Etc::PreferencesParts": f"{home}/etc/preferences.d",
            "Dir::Etc::Trusted": f"{home}/etc/trusted.gpg",
            "Dir::Etc::TrustedParts": f"{home}/etc/trusted.gpg.d",
            "Dir::State": f"{home}/state", "Dir::State::status": f"{home}/status",
            "Dir::Cache": f"{home}/cache", "Dir::Log": f"{home}/log",
            "APT::Architecture": "amd64", "Debug::NoLocking": "true",
            "APT::Sandbox::User": "root",
            # One try, one request at a time, no extras: every failure shows, none is retried
            # away.
            "Acquire::Retries": "0", "Acquire::http::Pipeline-Depth": "0",
            "Acquire::http::Timeout": "30", "Acquire::Languages": "none",
            "Acquire::PDiffs": "false", "Acquire::http::Proxy::127.0.0.1": "DIRECT",
        }
        config = home / "apt-config"
        config.write_text("".join(f'{key} "{value}";\n' for key, value in settings.items())
                          + 'APT::Architectures { "amd64"; };\n')
        env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARIABLES}
        env.update(APT_CONFIG=str(config), LC_ALL="C", LANGUAGE="C")
        return home, env

    def _apt(self, env: dict[str, str], cwd: Path, *args: str) -> list[str]:
        done = subprocess.run(["apt-get", "-q", *args], env=env, cwd=cwd, capture_output=True,
                              text=True, timeout=300, check=False)
        return apt_problems(done.returncode, f"{done.stdout}\n{done.stderr}")

    def _iteration(self, index: int, home: Path, env: dict[str, str]) -> None:
        started = time.monotonic()
        failures = [Failure(index, "update", "\n".join(problems))
                    for problems in [self._apt(env, home, "update")] if problems]
        lists = home / "state/lists"
        names = sorted({name for path in lists.glob("*_Packages")
                        for name in parse_packages(path.read_text(), "Package")})
        target = home / "download"
        for old in target.iterdir():
            old.unlink()
        if not names:
            failures.append(Failure(index, "update", "the client's index lists no packages"))
        else:
            problems = self._apt(env, target, "download", *names)
            if problems:
                failures.append(Failure(index, "download", "\n".join(problems)))
        got = {path.name.split("_", 1)[0] for path in target.glob("*.deb")}
        if names and not failures and got != set(names):
            # apt said it fetched everything: hold it to that.
            missing = ", ".join(sorted(set(names) - got)[:5])
            failures.append(Failure(index, "verify", f"apt-get succeeded but lacks {missing}"))
        run = Iteration(client=index, started=started, finished=time.monotonic(),
                        listed=len(names), downloaded=len(got), failures=len(failures))
        with self._changed:
            self._runs.append(run)
            self._failures.extend(failures)
            self._changed.notify_all()

    def _loop(self, index: int) -> None:
        deadline = time.monotonic() + self.max_seconds
        try:
            home, env = self._setup(index)
            while not self._stop.is_set() and time.monotonic() < deadline:
                self._iteration(index, home, env)
        except (OSError, subprocess.SubprocessError) as exc:
            with self._changed:
                self._failures.append(Failure(index, "harness", repr(exc)))
                self._changed.notify_all()

    def start(self) -> AptClients:
        for index in range(self.clients):
            thread = threading.Thread(target=self._loop, args=(index,), name=f"apt-client{index}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def wait_rounds(self, rounds: int = 1, timeout: float = 120.0) -> None:
        """Block until every client has finished ``rounds`` iterations begun after this call."""
        mark = time.monotonic()

        def done() -> bool:
            started = [run.client for run in self._runs if run.started >= mark]
            return all(started.count(i) >= rounds for i in range(self.clients))

        def gone() -> bool:  # a client stopped (max_seconds, or the harness itself failed)
            return not all(thread.is_alive() for thread in self._threads)

        with self._changed:
            self._changed.wait_for(lambda: done() or gone(), timeout)
            if not done():
                raise RuntimeError(f"apt clients did not finish {rounds} rounds "
                                   f"(waited up to {timeout}s); last failures: "
                                   f"{self._failures[-3:]}")

    def result(self) -> ClientsResult:
        """What the clients have done so far (they keep going)."""
        with self._lock:
            return ClientsResult(iterations=len(self._runs), failures=list(self._failures),
                                 runs=list(self._runs))

    def stop(self) -> ClientsResult:
        """Let every client finish the iteration it is in, then report."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        return self.result()

    def __enter__(self) -> AptClients:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

