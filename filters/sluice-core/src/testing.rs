//! Test-only helpers shared by this crate's unit tests.

/// Splits `input` at the given sorted cut points into owned chunks.
pub fn split_at_points(input: &[u8], points: &[usize]) -> Vec<Vec<u8>> {
    let mut chunks = Vec::with_capacity(points.len() + 1);
    let mut start = 0;
    for &p in points {
        chunks.push(input[start..p].to_vec());
        start = p;
    }
    chunks.push(input[start..].to_vec());
    chunks
}
