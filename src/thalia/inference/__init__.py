"""Bayesian inversion of any forward model y = g(θ) with Gaussian priors."""
