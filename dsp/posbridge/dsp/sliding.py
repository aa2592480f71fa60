"""Sliding-window extremes in O(n) with NumPy alone (van Herk / Gil-Werman).

The swipe decoder and detector need running maxima and minima (local envelope, noise floor) but
must start fast, so they avoid SciPy's heavy ``scipy.signal`` / ``scipy.ndimage`` imports.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def _trailing(values: NDArray[np.float64], size: int, maximum: bool) -> NDArray[np.float64]:
    """``out[i] = reduce(values[i - size + 1 : i + 1])`` along axis 0 (window ends at ``i``)."""
    ufunc = np.maximum if maximum else np.minimum
    pad = -np.inf if maximum else np.inf
    count = values.shape[0]
    if count == 0 or size <= 1:
        return values.copy()
    blocks = -(-(count + size - 1) // size)
    padded = np.full((blocks * size, *values.shape[1:]), pad, dtype=np.float64)
    padded[size - 1 : size - 1 + count] = values
    shaped = padded.reshape(blocks, size, *values.shape[1:])
    prefix = ufunc.accumulate(shaped, axis=1).reshape(padded.shape)
    suffix = ufunc.accumulate(shaped[:, ::-1], axis=1)[:, ::-1].reshape(padded.shape)
    result: NDArray[np.float64] = ufunc(suffix[:count], prefix[size - 1 : size - 1 + count])
    return result


def trailing_min(values: NDArray[np.float64], size: int) -> NDArray[np.float64]:
    """Minimum over the ``size`` rows ending at each row (fewer at the start), along axis 0."""
    return _trailing(np.asarray(values, dtype=np.float64), size, False)


def centred_max(values: NDArray[np.float64], size: int) -> NDArray[np.float64]:
    """Maximum over a window of ``size`` (odd) samples centred on each sample, along axis 0."""
    half = size // 2
    data = np.asarray(values, dtype=np.float64)
    shifted = np.concatenate((data, np.full((half, *data.shape[1:]), -np.inf)))
    return _trailing(shifted, 2 * half + 1, True)[half:]


def centred_min(values: NDArray[np.float64], size: int) -> NDArray[np.float64]:
    """Minimum over a window of ``size`` (odd) samples centred on each sample, along axis 0."""
    half = size // 2
    data = np.asarray(values, dtype=np.float64)
    shifted = np.concatenate((data, np.full((half, *data.shape[1:]), np.inf)))
    return _trailing(shifted, 2 * half + 1, False)[half:]
