"""Model providers behind one small async interface."""
