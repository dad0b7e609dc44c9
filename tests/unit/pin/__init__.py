"""Unit tests of idservice.pin."""
