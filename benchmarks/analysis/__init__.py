"""Numerical analysis of rate–distortion data: Bjøntegaard deltas and R(D) bounds."""
