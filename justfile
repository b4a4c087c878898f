# Developer recipes. CI does not need `just`: it runs `bash .ci/run`.

# Format every crate.
fmt:
    cargo fmt --all

# Formatting, lints and the dependency rule of DESIGN §3.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --all-features -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --all-features
    bash .ci/check-dependency-rule

# The README's test command.
test:
    cargo test --workspace --all-features

# What CI runs.
ci:
    bash .ci/run
