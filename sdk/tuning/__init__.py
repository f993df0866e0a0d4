"""`edgekit.tune`: search for the fastest deployment that keeps the accuracy budget (Optuna)."""
