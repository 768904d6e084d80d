//! tmp
pub mod speech;
#[allow(dead_code, unreachable_pub)]
mod audio;
