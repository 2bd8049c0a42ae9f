//! The code measurement (SPEC.md §30): SHA-256 of the vault's release
//! build, defined so that anyone can rebuild it from a checkout and get the
//! same hash.
//!
//! Recipe [`RECIPE`]: with Rust [`TOOLCHAIN`], in a fresh target
//! directory, run
//!
//! ```text
//! cargo build --release --locked -p backup-key-vault --no-default-features \
//!     --target thumbv7em-none-eabi
//! ```
//!
//! with no `RUSTFLAGS` and every rustc invocation given
//! `--remap-path-prefix` for the checkout (`/bkv`), the cargo home
//! (`/cargo`) and the target directory (`/target`), so no local path ends
//! up in the output. The flags are added by a rustc wrapper rather than
//! `RUSTFLAGS` because cargo hashes `RUSTFLAGS` into the output file names
//! and symbol suffixes, which would make the bytes depend on the paths the
//! flags name. Then hash every `.rlib` the build leaves in
//! `target/thumbv7em-none-eabi/release/deps/`: the manifest is one line
//! `hex(SHA-256(file)) "  " crate-name ".rlib" "\n"` per file, sorted, and
//! the measurement is SHA-256 of the manifest. That covers the vault and
//! every crate it links (opaque-ke, the curve, Argon2, HPKE, ...), each as
//! built for an HSM-class target without `std`.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use backup_key_vault::bundle::artifact::to_hex;

use crate::evidence::sha256;

/// The recipe's name, as evidence files cite it.
pub const RECIPE: &str = "bkv-measure/v1";
/// The pinned toolchain: `rustc --version` must report this release.
pub const TOOLCHAIN: &str = "1.95.0";
/// The target the vault is built for.
pub const TARGET: &str = "thumbv7em-none-eabi";
/// The package that is built.
pub const PACKAGE: &str = "backup-key-vault";
/// Environment variable that turns `bkv` into the recipe's rustc wrapper;
/// its value is the list of `from=to` remappings separated by U+001F.
pub const WRAPPER_ENV: &str = "BKV_MEASURE_REMAP";

/// Why a measurement could not be made.
#[derive(Debug)]
#[non_exhaustive]
pub enum MeasureError {
    /// A file or process could not be used.
    Io(String),
    /// The toolchain is not the pinned one.
    WrongToolchain {
        /// What `rustc -vV` reported.
        found: String,
    },
    /// `cargo build` failed.
    BuildFailed(String),
    /// The build left no `.rlib`.
    NothingBuilt,
}

impl fmt::Display for MeasureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::WrongToolchain { found } => write!(
                f,
                "the measurement recipe pins Rust {TOOLCHAIN}, this toolchain is {found} (use --toolchain, or --allow-other-toolchain for a non-canonical measurement)"
            ),
            Self::BuildFailed(e) => write!(f, "cargo build failed: {e}"),
            Self::NothingBuilt => f.write_str("the build produced no .rlib"),
        }
    }
}

impl std::error::Error for MeasureError {}

fn io(what: &str) -> impl Fn(std::io::Error) -> MeasureError + '_ {
    move |e| MeasureError::Io(format!("{what}: {e}"))
}

/// How to measure.
#[derive(Clone, Debug)]
pub struct MeasureOptions {
    /// The checkout (the workspace root).
    pub checkout: PathBuf,
    /// A rustup toolchain name to use instead of the default one.
    pub toolchain: Option<String>,
    /// Measure even with another toolchain than [`TOOLCHAIN`] (the result
    /// is then not the canonical measurement).
    pub allow_other_toolchain: bool,
    /// The executable that acts as the rustc wrapper (normally `bkv`
    /// itself, see [`rustc_wrapper_main`]).
    pub wrapper: PathBuf,
    /// Where to build; a fresh temporary directory if `None`.
    pub target_dir: Option<PathBuf>,
}

/// One hashed build output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeasuredFile {
    /// The crate name (file name without `lib`, hash suffix and `.rlib`).
    pub crate_name: String,
    /// SHA-256 of the file.
    pub sha256: [u8; 32],
}

/// A measurement and how it was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Measurement {
    /// The measurement: SHA-256 of [`Self::manifest`].
    pub sha256: [u8; 32],
    /// The manifest that was hashed.
    pub manifest: String,
    /// The files, in manifest order.
    pub files: Vec<MeasuredFile>,
    /// `rustc -vV`'s release line.
    pub rustc: String,
}

/// The crate name of `lib<name>-<hash>.rlib`.
fn crate_name(file_name: &str) -> Option<&str> {
    let stem = file_name.strip_prefix("lib")?.strip_suffix(".rlib")?;
    let (name, hash) = stem.rsplit_once('-')?;
    (!name.is_empty() && !hash.is_empty()).then_some(name)
}

/// Hashes the `.rlib` files of `deps_dir` into a manifest (SPEC.md §30.2).
pub fn manifest_of(deps_dir: &Path) -> Result<(String, [u8; 32], Vec<MeasuredFile>), MeasureError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(deps_dir).map_err(io("reading the build output"))? {
        let entry = entry.map_err(io("reading the build output"))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(crate_name) = crate_name(name) else {
            continue;
        };
        let bytes = std::fs::read(entry.path()).map_err(io("reading an rlib"))?;
        files.push(MeasuredFile {
            crate_name: crate_name.to_string(),
            sha256: sha256(&bytes),
        });
    }
    if files.is_empty() {
        return Err(MeasureError::NothingBuilt);
    }
    files.sort_by(|a, b| (&a.crate_name, a.sha256).cmp(&(&b.crate_name, b.sha256)));
    let manifest: String = files
        .iter()
        .map(|f| format!("{}  {}.rlib\n", to_hex(&f.sha256), f.crate_name))
        .collect();
    let digest = sha256(manifest.as_bytes());
    Ok((manifest, digest, files))
}

/// Variables that could change the build behind the recipe's back.
fn scrub(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let cargo_setting = key.starts_with("CARGO_") && key != "CARGO_HOME";
        let rust_setting = matches!(
            key,
            "RUSTFLAGS"
                | "RUSTDOCFLAGS"
                | "RUSTC"
                | "RUSTDOC"
                | "RUSTC_WRAPPER"
                | "RUSTC_WORKSPACE_WRAPPER"
                | "RUSTC_BOOTSTRAP"
                | "CARGO"
                | "RUSTUP_TOOLCHAIN"
                | WRAPPER_ENV
        );
        if cargo_setting || rust_setting {
            command.env_remove(key);
        }
    }
}

fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

/// Rebuilds the vault from `options.checkout` by the recipe and measures it.
pub fn measure(options: &MeasureOptions) -> Result<Measurement, MeasureError> {
    let checkout = options
        .checkout
        .canonicalize()
        .map_err(io("the checkout"))?;
    let temp;
    let target_dir = match &options.target_dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir().map_err(io("a temporary directory"))?;
            temp.path().join("target")
        }
    };
    std::fs::create_dir_all(&target_dir).map_err(io("the target directory"))?;
    let target_dir = target_dir
        .canonicalize()
        .map_err(io("the target directory"))?;

    let toolchain_env = |command: &mut Command| {
        scrub(command);
        if let Some(t) = &options.toolchain {
            command.env("RUSTUP_TOOLCHAIN", t);
        }
    };

    let mut rustc = Command::new("rustc");
    rustc.arg("-vV").current_dir(&checkout);
    toolchain_env(&mut rustc);
    let out = rustc.output().map_err(io("running rustc -vV"))?;
    let version = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("release: ").map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    if version != TOOLCHAIN && !options.allow_other_toolchain {
        return Err(MeasureError::WrongToolchain { found: version });
    }

    let mut remaps: Vec<OsString> = vec![remap(&checkout, "/bkv")];
    if let Some(home) = cargo_home().and_then(|h| h.canonicalize().ok()) {
        remaps.push(remap(&home, "/cargo"));
    }
    remaps.push(remap(&target_dir, "/target"));
    let remaps = remaps.join(&OsString::from("\u{1f}"));

    let mut cargo = Command::new("cargo");
    cargo
        .args(["build", "--release", "--locked", "-p", PACKAGE])
        .args(["--no-default-features", "--target", TARGET])
        .arg("--manifest-path")
        .arg(checkout.join("Cargo.toml"))
        .current_dir(&checkout);
    toolchain_env(&mut cargo);
    cargo
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("CARGO_INCREMENTAL", "0")
        .env("RUSTC_WRAPPER", &options.wrapper)
        .env(WRAPPER_ENV, remaps);
    let out = cargo.output().map_err(io("running cargo"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(MeasureError::BuildFailed(tail.join("\n")));
    }
    let deps = target_dir.join(TARGET).join("release").join("deps");
    let (manifest, sha256, files) = manifest_of(&deps)?;
    Ok(Measurement {
        sha256,
        manifest,
        files,
        rustc: version,
    })
}

fn remap(from: &Path, to: &str) -> OsString {
    let mut arg = from.as_os_str().to_os_string();
    arg.push("=");
    arg.push(to);
    arg
}

/// If this process was started by [`measure`] as cargo's rustc wrapper
/// (`$RUSTC_WRAPPER rustc <args>` with [`WRAPPER_ENV`] set), runs rustc
/// with the recipe's `--remap-path-prefix` flags and returns its exit
/// code; otherwise `None`. Call it first thing in `main`.
pub fn rustc_wrapper_main() -> Option<i32> {
    let remaps = std::env::var_os(WRAPPER_ENV)?;
    let mut args = std::env::args_os().skip(1);
    let rustc = args.next()?;
    let args: Vec<OsString> = args.collect();
    let mut command = Command::new(rustc);
    command.args(&args);
    // Only compilations, not cargo's `rustc -vV` probes.
    if args.iter().any(|a| a == "--crate-name") {
        let remaps = remaps.to_string_lossy().into_owned();
        for mapping in remaps.split('\u{1f}').filter(|m| !m.is_empty()) {
            command.arg(format!("--remap-path-prefix={mapping}"));
        }
    }
    let status = command.status().ok()?;
    Some(status.code().unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_names() {
        assert_eq!(crate_name("libopaque_ke-0123abcd.rlib"), Some("opaque_ke"));
        assert_eq!(crate_name("librand_core-ff.rlib"), Some("rand_core"));
        assert_eq!(crate_name("libfoo.rlib"), None);
        assert_eq!(crate_name("libfoo-1.rmeta"), None);
        assert_eq!(crate_name("foo-1.rlib"), None);
    }
}
