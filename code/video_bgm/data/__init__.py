"""Data shared by training, evaluation and dataset preparation: clips and layouts, the feature cache,
segments, and the preparation of a dataset from raw footage. Imports neither train/ nor evaluation/."""
