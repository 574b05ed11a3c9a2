//! Values from jobs written into code a tool runs: Python for `hython`, Modo's command
//! language for `modo_cl`. A job's strings (file names, node paths) come from whoever
//! submitted it; written as literals here they stay data, whatever they hold.

use std::fmt::Write as _;

/// `text` as a Python string literal that evaluates to exactly `text`.
///
/// The literal is `u'...'` (the `u` keeps it a text string in the Python 2 of older
/// Houdinis and means nothing more in Python 3). Inside it only printable ASCII other than
/// `\` and `'` stands for itself; `\`, `'`, newline, carriage return and tab get their
/// short escapes and every other character a numeric one (`\xNN`, `\uNNNN`,
/// `\UNNNNNNNN`). So the literal is plain ASCII on one line: it cannot end early, span
/// lines, or depend on the source file's encoding.
pub(crate) fn python_literal(text: &str) -> String {
    let mut literal = String::with_capacity(text.len() + 3);
    literal.push_str("u'");
    for c in text.chars() {
        match c {
            '\\' => literal.push_str("\\\\"),
            '\'' => literal.push_str("\\'"),
            '\n' => literal.push_str("\\n"),
            '\r' => literal.push_str("\\r"),
            '\t' => literal.push_str("\\t"),
            ' '..='~' => literal.push(c),
            _ => {
                let code = u32::from(c);
                // Writing to a String cannot fail.
                let _ = match code {
                    0..=0xff => write!(literal, "\\x{code:02x}"),
                    0x100..=0xffff => write!(literal, "\\u{code:04x}"),
                    _ => write!(literal, "\\U{code:08x}"),
                };
            }
        }
    }
    literal.push('\'');
    literal
}

/// `text` as a double-quoted argument of a Modo command (`scene.open "PATH"`), with `\`
/// and `"` escaped by a backslash; `None` if it holds a control character (a line break
/// above all), which Modo's line-by-line command input cannot carry.
pub(crate) fn modo_string(text: &str) -> Option<String> {
    if text.chars().any(char::is_control) {
        return None;
    }
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        if matches!(c, '\\' | '"') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    Some(quoted)
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    use std::process::Command;

    use super::*;

    /// Strings that would break or inject code if pasted unquoted.
    const NASTY: &[&str] = &[
        "",
        "plain/scene.hip",
        "it's",
        "\"double\"",
        "back\\slash\\",
        "trailing\\",
        "'''",
        "\"\"\"",
        "line\nbreak",
        "carriage\rreturn\r\n",
        "tab\there",
        "nul\0byte",
        "bell\u{7}delete\u{7f}",
        "caf\u{e9} \u{0142}\u{f3}d\u{17a}",
        "emoji \u{1f431}\u{1f3ac}",
        "\u{ffff}\u{10ffff}\u{2028}\u{85}",
        "'); import os; os.system('touch pwned') #",
        "\\'; import os #",
        "$(touch pwned) `touch pwned` %s {0}",
        "\\N{BULLET} \\x41 \\u0041",
    ];

    #[test]
    fn python_literals_are_ascii_on_one_line() {
        for text in NASTY {
            let literal = python_literal(text);
            assert!(literal.is_ascii(), "{literal}");
            assert!(!literal.chars().any(|c| c.is_ascii_control()), "{literal}");
            assert!(literal.starts_with("u'") && literal.ends_with('\''));
        }
        assert_eq!(python_literal("a'b\\c\n"), "u'a\\'b\\\\c\\n'");
        assert_eq!(python_literal("\u{e9}\u{1f431}"), "u'\\xe9\\U0001f431'");
        assert_eq!(python_literal("\u{2028}"), "u'\\u2028'");
    }

    /// Regression guard for "a file name with quotes or newlines must not break or inject
    /// code": real Python reads every literal back as the exact string. Run on Unix, where
    /// CI has python3 (the Windows build of these tests runs under Wine, without Python).
    #[cfg(unix)]
    #[test]
    fn python_reads_every_literal_back_exactly() {
        if !python_available() {
            return;
        }
        // One program printing each literal's code points, compared with Rust's.
        let mut program = String::from("import sys\nvalues = [\n");
        for text in NASTY {
            program.push_str(&format!("    {},\n", python_literal(text)));
        }
        program.push_str("]\nfor v in values:\n    print(' '.join(str(ord(c)) for c in v))\n");
        program.push_str("print(repr((-5, 0, 1, 9223372036854775807, -9223372036854775808)))\n");
        let output = Command::new("python3")
            .arg("-c")
            .arg(&program)
            .output()
            .unwrap_or_else(|e| panic!("cannot run python3: {e}"));
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        let mut expected: Vec<String> = NASTY
            .iter()
            .map(|text| {
                text.chars()
                    .map(|c| u32::from(c).to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        expected.push(format!("{:?}", (-5, 0, 1, i64::MAX, i64::MIN)));
        assert_eq!(lines, expected);
    }

    /// Whether `python3` runs here; without it the round trip is skipped, except on CI.
    #[cfg(unix)]
    fn python_available() -> bool {
        let found = Command::new("python3")
            .arg("--version")
            .output()
            .is_ok_and(|output| output.status.success());
        if !found {
            assert!(
                std::env::var_os("BUILDCAT_CI").is_none(),
                "CI must have python3 for the quoting tests"
            );
            println!("skipped: python3 not installed");
        }
        found
    }

    #[test]
    fn modo_strings_escape_quotes_and_refuse_line_breaks() {
        assert_eq!(
            modo_string("shots/a.lxo").as_deref(),
            Some("\"shots/a.lxo\"")
        );
        assert_eq!(
            modo_string("say \"hi\" c:\\x").as_deref(),
            Some("\"say \\\"hi\\\" c:\\\\x\"")
        );
        assert_eq!(modo_string("caf\u{e9}").as_deref(), Some("\"caf\u{e9}\""));
        assert_eq!(modo_string("a\nb"), None);
        assert_eq!(modo_string("a\rb"), None);
        assert_eq!(modo_string("a\0b"), None);
        assert_eq!(modo_string("a\u{85}b"), None);
    }
}
