"""Reports: one self-contained HTML page per run (plots inlined as PNG, no JavaScript needed to read
it), and a comparison page across runs."""
