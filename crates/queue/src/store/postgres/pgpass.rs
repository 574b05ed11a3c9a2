//! The password for a connection as libpq finds it: `PGPASSWORD`, else the first matching
//! line of the password file (`PGPASSFILE`, else `~/.pgpass`). The `postgres` crate reads
//! neither, so a server given `postgresql://buildcat@db/farm` gets its password the way
//! `psql` would.

use std::path::{Path, PathBuf};

/// What a connection is to, to match the password file's lines against.
#[derive(Debug)]
pub(super) struct Target<'a> {
    /// The host name as given (a file's `localhost` line also matches a socket path).
    pub(super) host: &'a str,
    /// The port.
    pub(super) port: u16,
    /// The database.
    pub(super) database: &'a str,
    /// The user.
    pub(super) user: &'a str,
}

/// The password for `target`, if the environment or the password file has one.
pub(super) fn password(target: &Target<'_>) -> Option<String> {
    if let Ok(password) = std::env::var("PGPASSWORD") {
        return Some(password);
    }
    let file = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".pgpass")))?;
    let text = read_private(&file)?;
    lookup(&text, target)
}

/// The file's text, unless it cannot be read or others may read it (libpq ignores such a
/// file too, with a warning, since the passwords in it are not private).
fn read_private(file: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file).ok()?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                file = %file.display(),
                "the password file has group or world access and is ignored; make it private with chmod 600"
            );
            return None;
        }
    }
    std::fs::read_to_string(file).ok()
}

/// The password of the first line of `text` that matches `target`.
fn lookup(text: &str, target: &Target<'_>) -> Option<String> {
    let port = target.port.to_string();
    let wanted = [target.host, port.as_str(), target.database, target.user];
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .find_map(|line| {
            let fields = split(line);
            let [host, port, database, user, password] = fields.as_slice() else {
                return None;
            };
            let matches = [host, port, database, user]
                .iter()
                .zip(wanted)
                .all(|(field, value)| field.as_str() == "*" || field.as_str() == value);
            matches.then(|| password.clone())
        })
}

/// A line's fields: split at `:`, with `\:` and `\\` standing for `:` and `\`.
fn split(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(field)) = (chars.next(), fields.last_mut()) {
                    field.push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => {
                if let Some(field) = fields.last_mut() {
                    field.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target<'static> {
        Target {
            host: "db.example",
            port: 5432,
            database: "farm",
            user: "buildcat",
        }
    }

    #[test]
    fn the_first_matching_line_wins_with_wildcards_and_escapes() {
        let text = "# comment\n\
                    other:5432:farm:buildcat:wrong\n\
                    db.example:5432:farm:buildcat:pa\\:ss\\\\word\n\
                    *:*:*:*:fallback\n";
        assert_eq!(lookup(text, &target()).as_deref(), Some("pa:ss\\word"));
        let text = "*:5432:*:buildcat:any\n";
        assert_eq!(lookup(text, &target()).as_deref(), Some("any"));
        let text = "db.example:5433:farm:buildcat:port\n";
        assert_eq!(lookup(text, &target()), None);
    }
}
