"""What mmrl trusts: which files may be unpickled without ``trust=True``.

SB3 ``.zip`` files run pickled code when they are loaded. mmrl loads one without ``trust=True`` only from a run
directory (:func:`mmrl.training.run_dir.run_dir_of`); anything else needs ``trust=True`` / ``--trust``, or a
pickle-free policy bundle (:mod:`mmrl.bundle`).
"""

from __future__ import annotations

import os
import zipfile

__all__ = ["TRUST_MESSAGE", "is_sb3_zip"]

TRUST_MESSAGE = (
    "SB3 .zip files run pickled code on load; pass trust=True / --trust only for files you created or trust "
    "(or convert your own run to a pickle-free bundle with `mmrl export RUN_DIR`)"
)


def is_sb3_zip(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a zip with SB3's ``data`` member: ``PPO.load`` and friends would unpickle it."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return "data" in archive.namelist()
