//! Structured values read off a fuzzer's bytes: flags, bytes, and texts separated by NUL.

/// A cursor over fuzz input. Reading past the end yields zeros and empty texts, so every
/// input means something.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// The bytes up to the next NUL (consumed, not returned), as text (lossy UTF-8).
    pub fn text(&mut self) -> String {
        let end = self
            .data
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.data.len());
        let text = String::from_utf8_lossy(&self.data[..end]).into_owned();
        self.data = self.data.get(end + 1..).unwrap_or_default();
        text
    }
}
