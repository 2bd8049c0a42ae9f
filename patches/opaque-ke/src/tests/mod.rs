// Upstream's tests are not vendored (see patches/README.md).
