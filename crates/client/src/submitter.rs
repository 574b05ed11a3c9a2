//! [`submitter()`]: who submits, as jobs record it.

/// Who submits from this process, as `user@host`: the job's submitter, which `jobs --user`
/// and `requeue --failed` go by.
///
/// The user is `$USER`, else `$USERNAME` (Windows), else `unknown`; the host is the
/// machine's host name, else `unknown`.
pub fn submitter() -> String {
    let user = ["USER", "USERNAME"]
        .into_iter()
        .filter_map(|name| std::env::var(name).ok())
        .map(|value| value.trim().to_owned())
        .find(|value| !value.is_empty())
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
}
