"""Adaptive Card 1.5 builders: pure functions from domain state to card JSON (German first, English by locale)."""
