"""Statistics the core and plugins share: standardisation (eq. 2-4), CV residuals (eq. 5-6),
label accuracy (eq. 9-10)."""
