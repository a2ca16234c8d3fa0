"""Where the raw data comes from: `HLV_DATA_DIR`, else `../shared/data` beside the repository, else the pinned
upstream files (repository, commit, path, sha256), downloaded once into a cache and verified."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from hlv_assets.lib import settings
from hlv_assets.lib.errors import HLVError
from hlv_assets.lib.paths import REPO_ROOT, output_dir

MANIFEST_PATH = Path(__file__).with_name("upstream_manifest.json")
RAW_URL = "https://raw.githubusercontent.com/{repository}/{commit}/{path}"


class DataSourceError(HLVError, RuntimeError):
    """The data cannot be had (offline, no local copy) or a file is not the pinned one."""


@dataclass(frozen=True)
class PinnedFile:
    path: str  # relative to the data pack root
    repository: str
    commit: str
    upstream_path: str
    bytes: int
    sha256: str

    @property
    def url(self) -> str:
        return RAW_URL.format(repository=self.repository, commit=self.commit, path=self.upstream_path)


@lru_cache(maxsize=1)
def pinned_files() -> dict[str, PinnedFile]:
    manifest = json.loads(MANIFEST_PATH.read_text())
    sources = manifest["sources"]
    out = {}
    for rel, idx, size, sha in manifest["files"]:
        src = sources[idx]
        path = src["local_prefix"] + rel
        out[path] = PinnedFile(
            path, src["repository"], src["commit"], src["upstream_prefix"] + rel, size, sha
        )
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class DataSource:
    """Resolves data-pack paths to local files, verifying each against its pinned sha256.

    `root` is a local copy of the pack (or None to use the download cache). `verify`: "strict" refuses any
    file whose sha256 differs from the pinned one; "record" only reports it (for a user's edited copy).
    """

    def __init__(
        self,
        root: Path | None,
        cache_dir: Path | None = None,
        verify: str = "strict",
        allow_download: bool = True,
    ):
        self.root = Path(root) if root else None
        self.cache_dir = Path(cache_dir) if cache_dir else output_dir() / "cache" / "upstream"
        self.verify = settings.check_verify(verify, "verify")
        self.allow_download = allow_download
        self._verified: dict[Path, str] = {}

    @classmethod
    def from_env(cls) -> DataSource:
        verify = settings.verify_mode()
        env = os.environ.get("HLV_DATA_DIR")
        if env:
            return cls(Path(env), verify=verify)
        sibling = REPO_ROOT.parent / "shared" / "data"
        if sibling.is_dir():
            return cls(sibling, verify=verify)
        return cls(None, verify=verify)

    def path(self, rel: str) -> Path:
        """Local path of a data-pack file, fetching it from upstream into the cache when needed."""
        pinned = pinned_files().get(rel)
        if self.root is not None:
            local = self.root / rel
            if not local.exists():
                raise DataSourceError(
                    f"{local} does not exist: HLV_DATA_DIR (or ../shared/data) must hold the data pack"
                )
            if pinned is not None:
                self._check(local, pinned, refuse=self.verify == "strict")
            return local
        if pinned is None:
            raise DataSourceError(f"{rel} is not a pinned data file and no HLV_DATA_DIR is set")
        local = self.cache_dir / rel
        if local.exists():
            self._check(local, pinned, refuse=True)
            return local
        if not self.allow_download:
            raise DataSourceError(
                f"{rel} is not cached and downloads are off: set HLV_DATA_DIR to the data pack"
            )
        self._download(pinned, local)
        return local

    def sha256(self, rel: str) -> str:
        local = self.path(rel)
        if local not in self._verified:
            self._verified[local] = sha256_file(local)
        return self._verified[local]

    def _check(self, local: Path, pinned: PinnedFile, refuse: bool) -> None:
        if local in self._verified:
            return
        digest = sha256_file(local)
        self._verified[local] = digest
        if digest != pinned.sha256 and refuse:
            raise DataSourceError(
                f"{local}: sha256 {digest[:16]}… differs from the pinned {pinned.sha256[:16]}… "
                f"({pinned.repository}@{pinned.commit[:7]}:{pinned.upstream_path}); refusing to use it "
                "(HLV_VERIFY_DATA=record accepts an edited copy and records its hash)"
            )

    def _download(self, pinned: PinnedFile, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            with urllib.request.urlopen(pinned.url, timeout=60) as resp:
                payload = resp.read()
        except OSError as exc:
            raise DataSourceError(
                f"cannot download {pinned.url} ({exc}); offline with no local copy: set HLV_DATA_DIR to the "
                "data pack (see README)"
            ) from None
        digest = hashlib.sha256(payload).hexdigest()
        if digest != pinned.sha256:
            raise DataSourceError(
                f"{pinned.url}: sha256 {digest[:16]}… is not the pinned {pinned.sha256[:16]}…"
            )
        fd, tmp = tempfile.mkstemp(dir=local.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, local)
