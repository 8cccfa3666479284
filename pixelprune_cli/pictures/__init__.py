"""Images made from outputs: restored PNGs (`restore`), overlays and contact sheets (`show`)."""
