"""Loading that names the file: MONAI's ``LoadImaged``, with every read or decode error turned into one
that says which file of which key failed (a truncated PNG, a DICOM with a broken JPEG stream, a
``Rows`` that does not match the pixel data), instead of a decoder's message without a path; and a
float image with NaN or infinite values refused, naming its file."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.transforms import LoadImaged

__all__ = ["LoadImageNamedD", "LoadImageNamedDict", "LoadImageNamedd"]


class LoadImageNamedd(LoadImaged):
    """``monai.transforms.LoadImaged`` (same arguments, same output) that names the file on failure,
    and refuses an image with NaN or infinite values (a float NIfTI or TIFF with NaN voxels would
    otherwise train on a NaN loss without a word).

    Args:
        args, kwargs: those of ``LoadImaged``.
        check_finite: refuse floating-point images holding NaN or infinite values (one pass over
            the loaded array; integer images cannot hold them).

    Raises:
        ValueError: ``cannot load the <key> file <path> (<reader>): <error>`` for any error of the
            reader, with the original error chained; the files of the keys whose path the reader's
            message names, or every key's file when it names none; ``the <key> file <path> holds
            <n> NaN or infinite value(s)`` for a float image that does.
    """

    def __init__(self, *args: Any, check_finite: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.check_finite = check_finite

    def __call__(self, data: Mapping[Hashable, Any], reader: Any = None) -> dict[Hashable, Any]:
        try:
            out = super().__call__(data, reader)
        except Exception as e:
            keys = [k for k in self.keys if k in data]
            # name the file the reader's message names, when it names one: not every key's file
            keys = [k for k in keys if str(data[k]) in str(e)] or keys
            files = ", ".join(f"the {k} file {data[k]}" for k in keys) or "the files"
            name = type(reader or getattr(self._loader, "readers", [None])[-1]).__name__
            raise ValueError(f"cannot load {files} ({name}): {type(e).__name__}: {e}") from e
        if self.check_finite:
            for key in self.keys:
                value = out.get(key)
                if isinstance(value, torch.Tensor) and value.is_floating_point():
                    bad = int((~torch.isfinite(value)).sum())
                    if bad:
                        raise ValueError(
                            f"the {key} file {data[key]} holds {bad} NaN or infinite value(s) of {value.numel()}: "
                            "fix or drop it (a NaN input gives a NaN loss)."
                        )
        return out


LoadImageNamedD = LoadImageNamedDict = LoadImageNamedd
