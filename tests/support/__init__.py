"""What tests and benchmarks share: the workflow runner, emulators of external APIs, the crash harness."""
