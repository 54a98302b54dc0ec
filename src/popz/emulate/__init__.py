"""Emulators of the SPS simulator, and the training sets they learn from."""
