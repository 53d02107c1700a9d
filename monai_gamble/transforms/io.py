"""Loading that names the file: MONAI's ``LoadImaged``, with every read or decode error turned into one
that says which file of which key failed (a truncated PNG, a DICOM with a broken JPEG stream, a
``Rows`` that does not match the pixel data), instead of a decoder's message without a path."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from monai.transforms import LoadImaged

__all__ = ["LoadImageNamedD", "LoadImageNamedDict", "LoadImageNamedd"]


class LoadImageNamedd(LoadImaged):
    """``monai.transforms.LoadImaged`` (same arguments, same output) that names the file on failure.

    Raises:
        ValueError: ``cannot load the <key> file <path> (<reader>): <error>`` for any error of the
            reader, with the original error chained.
    """

    def __call__(self, data: Mapping[Hashable, Any], reader: Any = None) -> dict[Hashable, Any]:
        try:
            return super().__call__(data, reader)
        except Exception as e:
            keys = [k for k in self.keys if k in data]
            files = ", ".join(f"the {k} file {data[k]}" for k in keys) or "the files"
            name = type(reader or getattr(self._loader, "readers", [None])[-1]).__name__
            raise ValueError(f"cannot load {files} ({name}): {type(e).__name__}: {e}") from e


LoadImageNamedD = LoadImageNamedDict = LoadImageNamedd
