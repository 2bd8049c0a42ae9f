//! The auditor of backup-key-vault fleet keys (SPEC.md §14-§18).
#![forbid(unsafe_code)]
