//! One line per event on stderr, `sluice: LEVEL: message`; journald adds the timestamps.
//! Never used on the packet path.

#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { eprintln!("sluice: info: {}", format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { eprintln!("sluice: warning: {}", format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { eprintln!("sluice: error: {}", format_args!($($arg)*)) };
}
