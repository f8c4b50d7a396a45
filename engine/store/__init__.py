"""The region store: the SQLite catalog (the truth) and the zarr feature arrays, the only code that touches either; its integrity check and repair."""
