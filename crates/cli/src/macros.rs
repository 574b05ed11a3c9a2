//! Printing to stdout that ends quietly when the reader goes away (`buildcat jobs | head`).
//!
//! Rust ignores SIGPIPE, so `println!` panics on a closed pipe; restoring SIGPIPE instead
//! would let a peer closing a socket kill the server. So stdout alone is handled here.

/// Writes one line to stdout; exits quietly if stdout is a closed pipe.
macro_rules! outln {
    () => {
        $crate::macros::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::macros::line(format_args!($($arg)*))
    };
}

/// Writes `text` and a newline to stdout.
pub fn line(text: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(error) = writeln!(out, "{text}") {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: could not write to stdout: {error}");
        std::process::exit(1);
    }
}
