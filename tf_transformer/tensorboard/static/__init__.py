"""Static frontend files of the Attention dashboard (package data)."""
