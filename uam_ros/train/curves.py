"""Loss curves: CSV (spreadsheets), JSON (scripts) and a PNG (eyes), written after every epoch.

The PNG is drawn with OpenCV (already a dependency for image conversion), not matplotlib, so
training adds no plotting stack: training loss as a line, validation loss as dots, log-scale y.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def write_curves(out_dir: str | Path, history: dict[str, list[dict[str, Any]]], title: str = "") -> None:
    """history = {"train": [{"step", "epoch", "lr", "loss", ...}], "val": [{"step", "epoch", "loss", ...}]}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "curves.json").write_text(json.dumps(history, indent=1) + "\n")
    rows = [{"split": split, **row} for split in ("train", "val") for row in history.get(split, [])]
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    with open(out_dir / "curves.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns or ["split"])
        writer.writeheader()
        writer.writerows(rows)
    try:
        plot_curves(out_dir / "curves.png", history, title)
    except ImportError:  # pragma: no cover - cv2 missing: the CSV/JSON are still there
        pass


def plot_curves(path: str | Path, history: dict[str, list[dict[str, Any]]], title: str = "",
                size: tuple[int, int] = (800, 480)) -> None:
    import cv2

    width, height = size
    left, right, top, bottom = 70, 20, 40, 45
    image = np.full((height, width, 3), 255, np.uint8)
    series = {
        "train": [(r["step"], r["loss"]) for r in history.get("train", []) if _finite(r.get("loss"))],
        "val": [(r["step"], r["loss"]) for r in history.get("val", []) if _finite(r.get("loss"))],
    }
    points = series["train"] + series["val"]
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(image, title or "loss", (left, 25), font, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    if not points:
        cv2.imwrite(str(path), image)
        return
    steps = [p[0] for p in points]
    logs = [math.log10(max(p[1], 1e-12)) for p in points]
    x0, x1 = min(steps), max(max(steps), min(steps) + 1)
    y0, y1 = min(logs), max(logs)
    if y1 - y0 < 1e-6:
        y0, y1 = y0 - 0.5, y1 + 0.5

    def to_px(step: float, loss: float) -> tuple[int, int]:
        x = left + (step - x0) / (x1 - x0) * (width - left - right)
        y = top + (y1 - math.log10(max(loss, 1e-12))) / (y1 - y0) * (height - top - bottom)
        return int(round(x)), int(round(y))

    grey, black = (200, 200, 200), (0, 0, 0)
    cv2.rectangle(image, (left, top), (width - right, height - bottom), black, 1)
    for k in range(5):  # y ticks
        value = y0 + (y1 - y0) * k / 4
        _, y = to_px(x0, 10 ** value)
        cv2.line(image, (left, y), (width - right, y), grey, 1)
        cv2.putText(image, f"{10 ** value:.3g}", (5, y + 4), font, 0.4, black, 1, cv2.LINE_AA)
    for k in range(5):  # x ticks
        step = x0 + (x1 - x0) * k / 4
        x, _ = to_px(step, 10 ** y1)
        cv2.putText(image, f"{int(step)}", (x - 10, height - bottom + 18), font, 0.4, black, 1, cv2.LINE_AA)
    cv2.putText(image, "step", (width // 2 - 15, height - 8), font, 0.45, black, 1, cv2.LINE_AA)
    train = np.array([to_px(s, v) for s, v in series["train"]], np.int32)
    if len(train) > 1:
        cv2.polylines(image, [train.reshape(-1, 1, 2)], False, (200, 90, 30), 1, cv2.LINE_AA)
    for s, v in series["val"]:
        cv2.circle(image, to_px(s, v), 4, (30, 30, 220), -1, cv2.LINE_AA)
    cv2.putText(image, "train", (width - right - 110, top + 18), font, 0.45, (200, 90, 30), 1, cv2.LINE_AA)
    cv2.putText(image, "val", (width - right - 50, top + 18), font, 0.45, (30, 30, 220), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), image)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
