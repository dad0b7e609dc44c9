"""Test helpers shared across the suite (not tests themselves)."""
