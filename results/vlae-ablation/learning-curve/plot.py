"""The learning curve (curve.csv) as a figure, with a power-law fit of the IWAE NLL against
steps, NLL(s) = a + b * s**(-c), over the stages from 1000 steps on (earlier ones are the
KL warm-up's and the initial transient). Writes curve.png and curve.svg and prints the fit.

    python results/vlae-ablation/learning-curve/plot.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from scipy.optimize import curve_fit  # noqa: E402

HERE = Path(__file__).resolve().parent
PAPER_NLL = 79.03  # Chen et al. 2017, Table 1: VLAE on statically binarized MNIST


def power_law(steps, a, b, c):
    return a + b * steps ** (-c)


def main() -> None:
    curve = pd.read_csv(HERE / "curve.csv").sort_values("step")
    fitted = curve[curve["step"] >= 1000]
    fit = None
    if len(fitted) >= 4:  # three parameters: one point of slack at least
        fit, _ = curve_fit(power_law, fitted["step"], fitted["iwae_nll_nats"],
                           p0=(80.0, 100.0, 0.5), maxfev=20000)  # fmt: skip
        print(
            f"NLL(s) = {fit[0]:.2f} + {fit[1]:.1f} * s^-{fit[2]:.3f}; "
            f"at 1e5 steps {power_law(1e5, *fit):.2f}, at 1e6 {power_law(1e6, *fit):.2f}"
        )
    sns.set_theme(style="whitegrid", context="notebook")
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=150)
    left.plot(curve["step"], curve["iwae_nll_nats"], "o-", label="IWAE NLL (k = 100)")
    left.plot(curve["step"], curve["neg_elbo_nats"], "s--", label="−ELBO")
    left.axhline(PAPER_NLL, color="0.3", ls=":", label=f"paper {PAPER_NLL}")
    if fit is not None:
        steps = np.geomspace(1000, max(100_000, curve["step"].max()), 100)
        left.plot(steps, power_law(steps, *fit), color="0.5", lw=1,
                  label=f"fit: {fit[0]:.1f} + {fit[1]:.0f}·s^-{fit[2]:.2f}")  # fmt: skip
    left.set(xscale="log", xlabel="training steps (batch 128)", ylabel="nats per image",
             title="500 spread test images")  # fmt: skip
    left.legend(fontsize=8)
    right.plot(curve["step"], curve["kl_nats"], "o-", color="C2")
    right.set(xscale="log", xlabel="training steps (batch 128)", ylabel="KL (nats per image)",
              title="what z carries")  # fmt: skip
    for ax in (left, right):  # the stages themselves as ticks, no crowded minor labels
        ticks = sorted(
            set(curve["step"]) | ({100_000} if fit is not None and ax is left else set())
        )
        ax.set_xticks(
            ticks, [f"{s / 1000:g}k" if s >= 1000 else str(s) for s in ticks], rotation=45
        )
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    fig.tight_layout()
    for suffix in ("png", "svg"):
        fig.savefig(HERE / f"curve.{suffix}", bbox_inches="tight")


if __name__ == "__main__":
    main()
