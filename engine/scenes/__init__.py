"""Scenes: similarity queries, rarity, imported embedding spaces and the optional learned embedding."""
