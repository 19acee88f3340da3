//! A deflated stream from the module, read a few bytes at a time: inflated through a 64 KB
//! window, so a token list is never held whole (a VM keeps every page it ever touched).

use miniz_oxide::inflate::stream::{inflate, InflateState};
use miniz_oxide::{DataFormat, MZFlush, MZStatus};

const WINDOW: usize = 64 * 1024;

pub(super) struct Inflater<'a> {
    state: Box<InflateState>,
    input: &'a [u8],
    window: Vec<u8>,
    /// `window[start..end]`: inflated, not yet taken.
    start: usize,
    end: usize,
    finished: bool,
}

impl<'a> Inflater<'a> {
    /// Reads the raw deflate stream `deflated`.
    pub fn new(deflated: &'a [u8]) -> Self {
        Inflater {
            state: InflateState::new_boxed(DataFormat::Raw),
            input: deflated,
            window: vec![0; WINDOW],
            start: 0,
            end: 0,
            finished: false,
        }
    }

    /// The next `n` bytes (at most the window), or `None` where the stream ends first.
    pub fn take(&mut self, n: usize) -> Result<Option<&[u8]>, String> {
        // Always start <= end <= WINDOW: end grows by what inflate wrote into the room left,
        // start by what was taken of what was there.
        while self.end - self.start < n && !self.finished {
            self.window.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            let Some(room) = self.window.get_mut(self.end..) else {
                return Err("the inflate window is full".to_owned());
            };
            let step = inflate(&mut self.state, self.input, room, MZFlush::None);
            self.input = self.input.get(step.bytes_consumed..).unwrap_or_default();
            self.end += step.bytes_written;
            match step.status {
                Ok(MZStatus::StreamEnd) => self.finished = true,
                Ok(_) if step.bytes_consumed > 0 || step.bytes_written > 0 => {}
                other => return Err(format!("cannot inflate the token list: {other:?}")),
            }
        }
        if self.end - self.start < n {
            return Ok(None);
        }
        let bytes = self.window.get(self.start..self.start + n);
        self.start += n;
        Ok(bytes)
    }

    /// Whether every byte of the stream was taken.
    pub fn is_done(&mut self) -> Result<bool, String> {
        Ok(self.take(1)?.is_none())
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn reads_across_window_edges_and_stops_at_the_end() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let deflated = miniz_oxide::deflate::compress_to_vec(&data, 6);
        let mut inflater = Inflater::new(&deflated);
        let mut got = Vec::new();
        // Odd sizes, so that takes straddle the 64 KB window.
        for n in [1usize, 1000, 65_535, 3, 70_000 % WINDOW, 77]
            .iter()
            .cycle()
        {
            match inflater.take(*n).unwrap() {
                Some(bytes) => got.extend_from_slice(bytes),
                None => break,
            }
        }
        let rest = data.len() - got.len();
        assert!(rest < 65_535, "{rest}");
        got.extend_from_slice(inflater.take(rest).unwrap().unwrap_or_default());
        assert_eq!(got, data);
        assert!(inflater.is_done().unwrap());
        assert!(Inflater::new(b"\xff\xff").take(1).is_err());
    }
}
