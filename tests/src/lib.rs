//! Integration tests of buildcat live in `tests/`; this library is empty.
