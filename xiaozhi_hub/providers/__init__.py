"""Providers behind Protocols (see base.py); fakes for tests, real offline engines for use."""
