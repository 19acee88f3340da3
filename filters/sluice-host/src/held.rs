//! An answer held whole with its head (not sent yet) so that a filter can rewrite it, within
//! what Envoy holds: one too long to hold is answered 502 `answer_too_large` in the caller's
//! dialect. Held past Envoy's buffer limit, the answer would end in Envoy's own 500 (with its
//! length undeclared) or end the stream (declared); written back over it, Envoy goes down.

use proxy_wasm::types::Action;
use sluice_core::{hold, Dialect};

use crate::http;

/// Where a held answer stands.
pub enum HeldAnswer {
    /// Held until whole; `declared`: its length was declared (and is within the limit).
    Holding { declared: bool },
    /// Too long to hold: its head says 502 `answer_too_large`, and its body becomes that error
    /// (in place of the first piece that comes) and nothing else.
    TooLarge(Option<Vec<u8>>),
}

/// What a body callback does with a held answer's piece.
pub enum Piece {
    /// Return this action; nothing else to do.
    Done(Action),
    /// The answer is whole and held (`body_size` bytes): read it, write what replaces it with
    /// [`http::replace_held_answer`], and continue.
    Whole,
}

impl HeldAnswer {
    /// Holds an answer from its head, unless its declared length (`declared`) is over `max`
    /// (the filter's `max_body_bytes`, Envoy's buffer limit): its head then becomes the 502's
    /// at once.
    pub fn start(declared: Option<u64>, max: u64, dialect: Dialect) -> HeldAnswer {
        if declared.is_some_and(|n| n > max) {
            return HeldAnswer::TooLarge(Some(too_large(max, dialect)));
        }
        HeldAnswer::Holding {
            declared: declared.is_some(),
        }
    }

    /// What the head callback returns: pause to hold, continue when the 502 goes out now.
    pub fn head_action(&self) -> Action {
        match self {
            HeldAnswer::Holding { .. } => Action::Pause,
            HeldAnswer::TooLarge(_) => Action::Continue,
        }
    }

    /// A piece of the held answer, `body_size` bytes held so far. An answer of undeclared
    /// length becomes the 502 once more than [`hold::undeclared_limit`] has come: Envoy
    /// checks its own limit before the filter sees the piece that crosses it.
    pub fn on_body(
        &mut self,
        body_size: usize,
        end_of_stream: bool,
        max: u64,
        dialect: Dialect,
    ) -> Piece {
        match self {
            HeldAnswer::TooLarge(first) => {
                http::set_response_body(body_size, &first.take().unwrap_or_default());
                Piece::Done(Action::Continue)
            }
            HeldAnswer::Holding { .. } if end_of_stream => Piece::Whole,
            HeldAnswer::Holding { declared } => {
                if hold::past_undeclared(*declared, body_size, max) {
                    let error = too_large(max, dialect);
                    http::set_response_body(body_size, &error);
                    *self = HeldAnswer::TooLarge(None);
                    return Piece::Done(Action::Continue);
                }
                Piece::Done(Action::Pause)
            }
        }
    }
}

fn too_large(max: u64, dialect: Dialect) -> Vec<u8> {
    log::warn!("sluice: an answer too long to hold whole (limit {max} bytes): answered 502");
    http::too_large_head(max, dialect)
}
