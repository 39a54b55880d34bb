//! End-to-end tests of Appeals live in `tests/`; this package holds them.
