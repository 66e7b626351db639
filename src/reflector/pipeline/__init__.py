"""Processing steps for a recording, each with a typed input and output."""
