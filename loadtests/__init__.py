"""brink's load-testing side: the native stack, load profiles, runners and analysis."""
