"""Leaves that import nothing above them: statistics, atomic file writes, one-line errors, the saved records' terms."""
