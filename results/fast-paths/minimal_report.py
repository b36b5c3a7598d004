"""The minimal report `vlae-bench report` is compared with: the mean rate and PSNR of each
method and parameter as a markdown table, and one RD figure (PNG and SVG), with pandas and
matplotlib alone. Usage: minimal_report.py RUN_FOLDER OUT_FOLDER"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

run, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
frame = pd.read_csv(run / "results.csv")
frame = frame[frame["rate_kind"].isin(["coded", "fixed"])]
means = frame.groupby(["method", "value"], dropna=False)[["bpp", "psnr"]].mean().reset_index()
(out / "report.md").write_text(means.to_markdown(index=False))
fig, ax = plt.subplots(figsize=(6, 4))
for method, group in means.groupby("method"):
    ax.plot(group["bpp"], group["psnr"], marker="o", label=method)
ax.set_xlabel("bits per pixel")
ax.set_ylabel("PSNR (dB)")
ax.legend(fontsize=7)
fig.savefig(out / "rd_psnr.png", dpi=150)
fig.savefig(out / "rd_psnr.svg")
