//! Secrets at the tool's edges: read one without putting it on the command
//! line (where every local user sees it in the process list), and write
//! and check the files that hold them (0600 in 0700 directories; a group-
//! or world-readable secrets file is refused, as ssh refuses a private key).

use std::io::{IsTerminal as _, Write as _};
use std::path::Path;

use zeroize::Zeroizing;

use crate::exit::Failure;

/// Where a secret may come from, in order of precedence.
pub struct SecretSource<'a> {
    /// The value of the visible flag (`--code`, `--token`), if given.
    pub flag: Option<&'a str>,
    /// The file option's value (`--code-file`, `--token-file`), if given.
    pub file: Option<&'a Path>,
    /// The environment variable read next.
    pub env: &'static str,
    /// What the secret is, for messages and the prompt.
    pub what: &'static str,
    /// The options that give it, for the message when none did.
    pub options: &'static str,
}

/// Reads the secret from the flag, else the file (its first line), else the
/// environment variable, else a prompt when stdin is a terminal (without
/// echo).
pub fn read(source: &SecretSource<'_>) -> Result<Zeroizing<String>, Failure> {
    let value = if let Some(v) = source.flag {
        Zeroizing::new(v.to_string())
    } else if let Some(path) = source.file {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            Failure::usage(format!(
                "cannot read the {} from {}: {e}",
                source.what,
                path.display()
            ))
        })?);
        Zeroizing::new(text.lines().next().unwrap_or_default().to_string())
    } else if let Some(v) = std::env::var_os(source.env) {
        Zeroizing::new(
            v.into_string()
                .map_err(|_| Failure::usage(format!("{} is not valid UTF-8", source.env)))?,
        )
    } else if std::io::stdin().is_terminal() {
        Zeroizing::new(
            rpassword::prompt_password(format!("{}: ", source.what))
                .map_err(|e| Failure::usage(format!("cannot read the {}: {e}", source.what)))?,
        )
    } else {
        return Err(Failure::usage(format!(
            "no {what}: give {options}, set {env}, or run on a terminal to be asked",
            what = source.what,
            options = source.options,
            env = source.env,
        )));
    };
    if value.is_empty() {
        return Err(Failure::usage(format!("the {} is empty", source.what)));
    }
    Ok(value)
}

/// Refuses a secrets file that its group or others may read or write:
/// the message names the file and the fix.
pub fn check_private_file(path: &Path, what: &str) -> Result<(), Failure> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .map_err(|e| Failure::other(format!("{}: {e}", path.display())))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(Failure::other(format!(
                "{path}: {what} is accessible by others (mode {mode:04o}); \
                 run `chmod 600 {path}` and start again",
                path = path.display(),
                mode = mode & 0o7777,
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = (path, what);
    Ok(())
}

/// Creates `dir` (and its parents) with mode 0700 if it does not exist.
pub fn create_private_dir(dir: &Path) -> Result<(), Failure> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| Failure::other(format!("cannot create {}: {e}", dir.display())))
}

/// Creates `path` new with mode 0600 (refusing to overwrite a file) and
/// returns it open for writing.
pub fn create_new_private(path: &Path) -> Result<std::fs::File, Failure> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Failure::usage(format!(
                "{} already exists; refusing to overwrite it",
                path.display()
            ))
        } else {
            Failure::other(format!("cannot create {}: {e}", path.display()))
        }
    })
}

/// Writes `bytes` to a new 0600 file at `path`.
pub fn write_new_private(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let mut file = create_new_private(path)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Failure::other(format!("cannot write {}: {e}", path.display())))
}

/// Writes lines to stdout without panicking when it is closed (`| head`):
/// the caller decides what a lost line means.
pub fn print(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(|e| Failure::other(format!("cannot write to stdout: {e}")))
}
