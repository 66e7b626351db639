"""Video platforms behind one seam, and the registry keyed by a room's `platform`."""
