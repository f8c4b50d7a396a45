"""Scenes: similarity queries, rarity and imported embedding spaces."""
