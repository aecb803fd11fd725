"""Utilities shared by the jobs: session, file access through Hadoop, the quality engine."""
