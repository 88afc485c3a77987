"""Layer 3: what acts on a live cluster (rolling restart, drain, health, guards), and the pure plans it follows."""
