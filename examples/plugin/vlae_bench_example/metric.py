"""Foreground IoU: how much of a binarized digit's ink a reconstruction keeps, and no more."""

import numpy as np

from benchmarks import Metric


class ForegroundIoU(Metric):
    """Intersection over union of the ink (pixels equal to 1) of original and reconstruction."""

    columns = {"foreground_iou": "higher"}  # its column, and which direction is better
    data = "binary"  # it scores binary (0/1) images

    def score(self, original: np.ndarray, reconstruction: np.ndarray) -> dict[str, float]:
        ink, kept = original == 1, reconstruction == 1
        union = np.logical_or(ink, kept).sum()
        return {"foreground_iou": float(np.logical_and(ink, kept).sum() / union) if union else 1.0}
