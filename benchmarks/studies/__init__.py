"""Studies built on the suite: rate–distortion theory experiments and paper-style comparisons."""
