"""The results table's columns: what identifies a row, what it measures, what it records.

A leaf of the suite (no pandas): the metric registry checks plugged-in columns against it
when metrics are only listed. :mod:`benchmarks.results` builds, stores and reads the table.
"""

# Identifying columns first, then measurements; see docs/architecture.md for their meaning.
ID_COLUMNS = [
    "dataset", "split", "method", "param", "value", "seed", "image", "rate_kind",
]  # fmt: skip
MEASURE_COLUMNS = [
    "bpp", "bits_per_dim", "rate_nats", "distortion_nats", "nll_nats", "kl_nats",
    "mse", "psnr", "ssim", "ms_ssim", "ms_ssim_db", "bit_error_rate", "enc_s", "dec_s",
    "phase", "batch_size", "dtype", "images_per_s", "p50_ms", "p95_ms", "peak_mem_mb", "device",
]  # fmt: skip
META_COLUMNS = ["height", "width", "channels", "n_bytes", "run_id", "job_id", "versions"]
COLUMNS = ID_COLUMNS + MEASURE_COLUMNS + META_COLUMNS
TEXT_COLUMNS = ID_COLUMNS + ["phase", "dtype", "device"]
RATE_KINDS = {"coded", "kl", "estimate", "fixed", "prior"}
ALL_IMAGES = "__all__"
# Columns that tell throughput rows (and seeds) apart: grouped by when present.
# ``items`` is a dataset's item options (patches=64, crop=256, mosaic), empty for plain items.
SPLIT_BY = ["items", "seed", "phase", "batch_size", "dtype", "device"]
