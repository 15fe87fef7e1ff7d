"""The plots write PNGs without touching matplotlib's global backend (notebooks keep their inline plots)."""

from __future__ import annotations

import matplotlib
import numpy as np

from gan_edu.plots import plot_confusions, plot_losses, plot_per_class_accuracy


def test_plots_write_pngs_and_leave_the_backend_alone(tmp_path):
    before = matplotlib.get_backend()
    matplotlib.use("svg")  # a backend no plot function would choose, so a switch shows
    try:
        history = [{"kind": "step", "step": s, "d_loss": 1.0 / s, "g_loss": 0.5} for s in (1, 2, 3)]
        paths = [
            plot_losses(history, tmp_path / "losses.png"),
            plot_confusions({"c": np.eye(3) * 5, "c'": np.ones((3, 3))}, ["a", "b", "c"], tmp_path / "confusion.png"),
            plot_per_class_accuracy(["a", "b", "c"], {"c": [1, 0.5, 0.2], "c'": [0.9, 0.4, 0.1]}, tmp_path / "per_class.png"),
        ]
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
