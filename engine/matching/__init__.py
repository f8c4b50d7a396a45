"""Matching: duplicate and partial pairs found from keyframe hashes and crop views, and the relations (groups, components, recording units) built from them."""
