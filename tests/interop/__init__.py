"""Element-stack interop tests: matrix-js-sdk with Rust crypto, driven from Python."""
