"""Loopback emulators of the HTTP APIs of external services (127.0.0.1 only), used with their real SDKs."""
