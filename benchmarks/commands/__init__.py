"""Command groups that live beside their subsystem; ``benchmarks.cli`` registers them."""
