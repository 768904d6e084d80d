#![allow(dead_code)] // Each target uses its own part of it.

//! What the machine fuzz targets share: reading the fuzz input, and a client options
//! probe (the builder's options without a transport).

use smallest_core::{ClientOptions, Config, Error, FromOptions};

/// The options a `ClientBuilder` makes, without a transport.
pub struct Probe(pub ClientOptions);

impl FromOptions for Probe {
    fn from_options(_: Config, options: ClientOptions) -> Result<Self, Error> {
        Ok(Probe(options))
    }
}

/// The fuzz input, read front to back; zeros once it runs out.
pub struct Input<'a>(pub &'a [u8]);

impl Input<'_> {
    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    pub fn bytes(&mut self, n: usize) -> &[u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }

    /// A short string of the input, as text (valid UTF-8, JSON-escaped by the caller).
    pub fn text(&mut self) -> String {
        let n = usize::from(self.byte() % 24);
        String::from_utf8_lossy(self.bytes(n)).into_owned()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
