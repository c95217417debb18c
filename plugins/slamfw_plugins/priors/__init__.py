"""Built-in priors."""
