"""Command-line plumbing: dataclass configs to argparse flags and YAML, nothing else."""
