"""Curation: the training-set selection (policy, diversity geometry, manifests) and its export."""
