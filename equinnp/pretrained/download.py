"""Where the published model files come from: a path, an environment variable, a cache, or a download.

``locate_ani2x(path)`` returns the folder that holds ``ani-2x_8x.info``, trying
in order:

1. ``path``, when given (an error if it does not hold the files);
2. the environment variable ``EQUINNP_ANI2X_PATH``;
3. the cache, ``$EQUINNP_CACHE/ani2x`` (default ``~/.cache/equinnp/ani2x``);
4. a download of the public release archive (``ANI2X_URL``, the ani-model-zoo
   ``ani-2x`` tag that TorchANI 2.9 downloads too) into the cache, with a
   progress bar; the extracted files are checked against ``ANI2X_SHA256``, a
   digest of every file the model needs, before the cache is used.

The files are MIT licensed (Copyright 2018- Xiang Gao and other ANI
developers; 2020 AIQM) and about 55 MB; they are never part of equinnp itself.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path

__all__ = ["ANI2X_URL", "ANI2X_SHA256", "ENV_VAR", "locate_ani2x", "default_cache", "model_digest", "extract_release",
           "download_ani2x"]

ANI2X_URL = "https://github.com/aiqm/ani-model-zoo/archive/ani-2x.zip"
#: ``model_digest`` of the published ANI-2x files (git tree 382e0a2f of aiqm/ani-model-zoo, tag ani-2x).
ANI2X_SHA256 = "20fae720579fc7c729ac9eedcac70fd7a2d794ac1b001fd0d51033249535fa63"
ENV_VAR = "EQUINNP_ANI2X_PATH"
INFO = "ani-2x_8x.info"
_NEEDED_SUFFIXES = (".info", ".params", ".dat", ".nnf", ".wparam", ".bparam")


def default_cache() -> Path:
    """``$EQUINNP_CACHE/ani2x``, default ``~/.cache/equinnp/ani2x``."""
    return Path(os.environ.get("EQUINNP_CACHE", Path.home() / ".cache" / "equinnp")) / "ani2x"


def _model_files(folder: Path):
    """The files inference reads: the .info, the constants and self energies, and every member's networks."""
    files = [folder / INFO]
    root = folder / "ani-2x_8x"
    files += sorted(p for p in root.glob("*") if p.is_file() and p.suffix in (".params", ".dat"))
    files += sorted(p for p in root.glob("train*/networks/ANN-*") if p.is_file())
    return files


def model_digest(folder) -> str:
    """SHA-256 over the sorted (relative path, SHA-256 of content) of the model's files in ``folder``."""
    folder = Path(folder)
    outer = hashlib.sha256()
    for path in _model_files(folder):
        inner = hashlib.sha256(path.read_bytes()).hexdigest()
        outer.update(f"{path.relative_to(folder).as_posix()}\0{inner}\n".encode())
    return outer.hexdigest()


def extract_release(archive, destination) -> Path:
    """Unpack the release zip's ``resources/`` (the .info file and the ``ani-2x_8x`` folder) into
    ``destination``, check the digest, and return ``destination``. Nothing is left behind on failure."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".ani2x-", dir=destination.parent))
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                for member in zf.infolist():
                    parts = Path(member.filename).parts
                    if "resources" not in parts or member.is_dir():
                        continue
                    relative = Path(*parts[parts.index("resources") + 1:])
                    if ".." in relative.parts or not (relative.name == INFO or relative.parts[0] == "ani-2x_8x"):
                        continue
                    target = staging / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(member) as source, open(target, "wb") as sink:
                        shutil.copyfileobj(source, sink)
        except zipfile.BadZipFile as error:
            raise ValueError(f"{archive} is not a zip archive ({error}): a corrupt or interrupted download") from None
        if not (staging / INFO).is_file():
            raise ValueError(f"{archive} holds no resources/{INFO}: not the ANI-2x release archive")
        digest = model_digest(staging)
        if digest != ANI2X_SHA256:
            raise ValueError(f"the files extracted from {archive} have digest {digest}, expected {ANI2X_SHA256}: "
                             "a corrupt or different download (delete it and retry)")
        if destination.exists():
            shutil.rmtree(destination)
        staging.rename(destination)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return destination


def download_ani2x(destination, url: str = ANI2X_URL) -> Path:
    """Download the release archive with a progress bar, then ``extract_release`` it into ``destination``."""
    from tqdm import tqdm

    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(suffix=".zip", dir=destination.parent, delete=False) as handle:
        archive = Path(handle.name)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(archive, "wb") as sink:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="ANI-2x parameters") as bar:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    sink.write(chunk)
                    bar.update(len(chunk))
        return extract_release(archive, destination)
    except OSError as error:
        raise RuntimeError(
            f"could not download the ANI-2x parameters from {url} ({error}). Download and unpack that archive "
            f"yourself and pass its resources/ folder as path=, or set {ENV_VAR} to it"
        ) from None
    finally:
        archive.unlink(missing_ok=True)


def locate_ani2x(path=None, download: bool = True) -> Path:
    """The folder holding ``ani-2x_8x.info``: ``path``, ``$EQUINNP_ANI2X_PATH``, the cache, or a download."""
    for folder, origin in ((path, "path"), (os.environ.get(ENV_VAR), f"${ENV_VAR}")):
        if folder:
            folder = Path(folder).expanduser()
            if not (folder / INFO).is_file():
                raise FileNotFoundError(f"{origin} = {folder} does not hold {INFO} (the folder of the ANI-2x release's "
                                        "resources/, with ani-2x_8x.info and ani-2x_8x/)")
            return folder
    cache = default_cache()
    if (cache / INFO).is_file():
        return cache
    if not download:
        raise FileNotFoundError(f"the ANI-2x parameters are not in {cache}; pass path= or set {ENV_VAR}")
    return download_ani2x(cache)
