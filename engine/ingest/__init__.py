"""Ingest: sources become sampled keyframes, features and triggers, committed by one writer, locally or on a Dask cluster; recordings and drives."""
