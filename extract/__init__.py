"""The extraction stage: frames -> frozen encoders -> content-addressed HDF5 shards -> split files."""
