//! [`submitter()`]: who submits, as jobs record it.

/// Who submits from this process, as `user@host`: the job's submitter, which `jobs --user`
/// and `requeue --failed` go by.
///
/// The user is `$USER`, else `$USERNAME` (Windows), else (on Unix) the user database's
/// name for the process's user id (a container or a service often sets no `$USER`, and
/// uid 0 is `root` all the same), else `unknown`; the host is the machine's host name,
/// else `unknown`.
pub fn submitter() -> String {
    let from_environment = ["USER", "USERNAME"]
        .into_iter()
        .filter_map(|name| std::env::var(name).ok())
        .map(|value| value.trim().to_owned())
        .find(|value| !value.is_empty());
    let user = from_environment
        .or_else(user_database::login)
        .unwrap_or_else(|| UNKNOWN.to_owned());
    let host = hostname::get()
        .ok()
        .and_then(|name| name.into_string().ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| UNKNOWN.to_owned());
    format!("{user}@{host}")
}

/// The user part of [`submitter()`]: what `requeue --failed` sends when no `--user` is
/// given, so that it matches the caller's jobs from any host.
pub fn submitter_user() -> String {
    let who = submitter();
    match who.rsplit_once('@') {
        Some((user, _host)) => user.to_owned(),
        None => who,
    }
}

/// Stands for a user or host that cannot be found out, so a submitter is never empty.
const UNKNOWN: &str = "unknown";

#[cfg(unix)]
mod user_database {
    use std::ffi::{CStr, c_char};
    use std::mem::MaybeUninit;

    /// Room for one user record's strings; `getpwuid_r` says `ERANGE` if it needs more,
    /// and then the user is unknown rather than read partly.
    const RECORD_BYTES: usize = 16 * 1024;

    /// The login name the user database gives the process's real user id, if any.
    pub(super) fn login() -> Option<String> {
        let mut record = MaybeUninit::<libc::passwd>::uninit();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let mut strings = vec![0 as c_char; RECORD_BYTES];
        // SAFETY: `getuid` cannot fail. `getpwuid_r` fills `record`, with its strings in
        // `strings` (whose length is passed), and points `found` at `record` only when it
        // found the user; the name is read only then, while `strings` lives, and copied.
        unsafe {
            let status = libc::getpwuid_r(
                libc::getuid(),
                record.as_mut_ptr(),
                strings.as_mut_ptr(),
                strings.len(),
                &mut found,
            );
            if status != 0 || found.is_null() || (*found).pw_name.is_null() {
                return None;
            }
            let name = CStr::from_ptr((*found).pw_name).to_string_lossy();
            let name = name.trim();
            (!name.is_empty()).then(|| name.to_owned())
        }
    }
}

#[cfg(not(unix))]
mod user_database {
    /// Windows sets `USERNAME` for every login: nothing more to ask.
    pub(super) fn login() -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_submitter_is_user_at_host() {
        let who = submitter();
        let (user, host) = who.rsplit_once('@').expect("user@host");
        assert!(!user.is_empty() && !host.is_empty(), "{who}");
        assert_eq!(submitter_user(), user);
    }

    /// Tester finding 14: with `$USER` unset, the user database names the user (uid 0 is
    /// `root`), not `unknown`.
    #[cfg(unix)]
    #[test]
    fn the_user_database_names_the_user_id() {
        // SAFETY: `getuid` has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        let name = user_database::login();
        if uid == 0 {
            // Every user database has root; other ids may have no entry in a container.
            assert_eq!(name.as_deref(), Some("root"));
        }
        assert!(name.is_none_or(|name| !name.is_empty() && name != UNKNOWN));
    }
}
