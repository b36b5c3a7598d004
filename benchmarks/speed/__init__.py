"""Speed: phases timed alone (throughput) and the ratio gate on pytest-benchmark runs."""
