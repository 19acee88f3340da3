//! How much of a body a filter may hold whole in Envoy: Envoy keeps at most its buffer limit
//! (`max`, the filters' `max_body_bytes`, configured alike), and checks it before the filter
//! sees the piece that crosses it (answering that piece with its own 500). Written back over
//! the limit, a held answer took Envoy down (1.40).

/// How much of a held body whose length was not declared may come before a filter must let it
/// go or replace it: `max` less what Envoy may read at once (up to 1 MiB, half of `max` at
/// most).
pub fn undeclared_limit(max: u64) -> u64 {
    max - (max / 2).min(1 << 20)
}

/// Whether a held body must be let go or replaced now: no length was declared (`declared`
/// false) and `held` bytes have come, past [`undeclared_limit`].
pub fn past_undeclared(declared: bool, held: usize, max: u64) -> bool {
    !declared && held as u64 > undeclared_limit(max)
}

/// Whether a body of `len` bytes may be written in place of a held one.
pub fn fits(len: usize, max: u64) -> bool {
    len as u64 <= max
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn an_undeclared_body_is_let_go_a_read_before_the_limit() {
        const MAX: u64 = 4 << 20;
        assert_eq!(undeclared_limit(MAX), 3 << 20);
        // A small limit keeps half of itself.
        assert_eq!(undeclared_limit(16 << 10), 8 << 10);
        assert!(!past_undeclared(false, 3 << 20, MAX));
        assert!(past_undeclared(false, (3 << 20) + 1, MAX));
        // A declared length within the limit is held to its end.
        assert!(!past_undeclared(true, (4 << 20) - 1, MAX));
        assert!(fits(4 << 20, MAX) && !fits((4 << 20) + 1, MAX));
    }
}
