"""Files written whole or not at all."""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager


def atomic_write(path: str, data: bytes | str) -> None:
    """Temporary file in the same folder, then rename: an interrupted write leaves the old file or none."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is for reading
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _replace(staging: str, final: str) -> None:
    shutil.rmtree(final, ignore_errors=True)
    os.replace(staging, final)


@contextmanager
def staged_folder(final: str, staging: str, place=_replace):
    """A folder written at `staging` and moved to `final` by `place` (replacing it) when the block ends without an
    error: a run cut off or failing mid-write leaves `final` as it was, and the staging folder is removed either way.
    The traces, LoadGen's logs and the export cache are written so."""
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    try:
        yield staging
        os.makedirs(os.path.dirname(final) or ".", exist_ok=True)
        place(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
