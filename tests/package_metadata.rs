//! What a crates.io user sees of this crate: its manifest, its front page
//! (the README, included as the crate-level rustdoc) and its dependencies.
//! `cargo package` and `cargo doc -D warnings` in `.ci/run` check the rest.

const MANIFEST: &str = include_str!("../Cargo.toml");
const README: &str = include_str!("../README.md");
const LIB: &str = include_str!("../src/lib.rs");

/// The lines of one `[section]` of the manifest, up to the next section.
fn section(name: &str) -> Vec<&'static str> {
    let header = format!("[{name}]");
    MANIFEST
        .lines()
        .skip_while(|l| l.trim() != header)
        .skip(1)
        .take_while(|l| !l.starts_with('['))
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect()
}

#[test]
fn no_placeholder_urls_and_the_fields_crates_io_shows() {
    assert!(!MANIFEST.contains("example.invalid"));
    assert!(!MANIFEST.contains("example.com"));
    let package = section("package");
    for field in [
        "description",
        "keywords",
        "categories",
        "documentation",
        "rust-version",
    ] {
        assert!(
            package.iter().any(|l| l.starts_with(&format!("{field} "))),
            "[package] lacks {field}"
        );
    }
    let keywords = package.iter().find(|l| l.starts_with("keywords")).unwrap();
    assert!(keywords.matches('"').count() / 2 <= 5, "crates.io takes 5");
}

#[test]
fn opaque_ke_comes_from_crates_io_unpatched() {
    assert!(!std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/patches")).exists());
    assert!(!MANIFEST.contains("[patch"));
    let dependency = section("dependencies")
        .into_iter()
        .find(|l| l.starts_with("opaque-ke "))
        .unwrap();
    assert!(!dependency.contains("path"), "{dependency}");
    assert!(dependency.contains("version = \"=4.0.1\""), "{dependency}");
}

#[test]
fn every_feature_is_documented_and_shown_on_docs_rs() {
    let features: Vec<&str> = section("features")
        .into_iter()
        .filter_map(|l| l.split_once(" = ").map(|(name, _)| name.trim()))
        .filter(|name| *name != "default")
        .collect();
    assert!(features.len() >= 3, "{features:?}");
    for feature in features {
        assert!(
            LIB.contains(&format!("//! - **`{feature}`**")),
            "feature {feature} is not documented in the crate docs"
        );
    }
    let docs_rs = section("package.metadata.docs.rs");
    assert!(docs_rs.contains(&"all-features = true"), "{docs_rs:?}");
    assert!(docs_rs.iter().any(|l| l.contains("\"docsrs\"")));
    assert!(LIB.contains("#![cfg_attr(docsrs, feature(doc_cfg))]"));
}

#[test]
fn readme_links_work_on_a_repository_page_and_in_rustdoc() {
    // The README is the crate's front page in rustdoc (docs.rs), where a
    // relative link to a file in the repository leads nowhere. Absolute
    // links and in-page anchors work in both places.
    for (n, line) in README.lines().enumerate() {
        for (i, _) in line.match_indices("](") {
            let target = &line[i + 2..];
            assert!(
                target.starts_with("http://")
                    || target.starts_with("https://")
                    || target.starts_with('#'),
                "README.md line {}: relative link {line:?}",
                n + 1
            );
        }
    }
    assert!(LIB.contains("#![doc = include_str!(\"../README.md\")]"));
}
