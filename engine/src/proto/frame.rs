//! Framing: every packet is a 4-byte big-endian length followed by that many bytes.
//!
//! [`FrameDecoder`] cuts frames out of a byte stream without trusting the length: a negative
//! length or one above the configured maximum is an error, and the connection must be closed.

/// Why the byte stream cannot be framed. The connection is closed; nothing else is affected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix is negative or above `frame_bytes_max`.
    BadLength { len: i32, frame_bytes_max: usize },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::BadLength {
                len,
                frame_bytes_max,
            } => {
                write!(f, "Len error {len} (frame limit {frame_bytes_max} bytes)")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// Finds the next complete frame at the front of `buf`.
///
/// Returns `Ok(Some((start, end)))` with the payload's byte range when a whole frame is present,
/// `Ok(None)` when more bytes are needed.
pub fn next_frame(
    buf: &[u8],
    frame_bytes_max: usize,
) -> Result<Option<(usize, usize)>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 0 || len as usize > frame_bytes_max {
        return Err(FrameError::BadLength {
            len,
            frame_bytes_max,
        });
    }
    let end = 4 + len as usize;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some((4, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_cut_at_their_length() {
        let buf = [0, 0, 0, 2, 7, 8, 9];
        assert_eq!(next_frame(&buf, 10), Ok(Some((4, 6))));
        assert_eq!(next_frame(&buf[..5], 10), Ok(None));
        assert_eq!(next_frame(&buf[..3], 10), Ok(None));
    }

    #[test]
    fn oversized_and_negative_lengths_are_refused() {
        assert!(next_frame(&[0, 0, 1, 0], 255).is_err());
        assert!(next_frame(&[0xff, 0xff, 0xff, 0xfe], 255).is_err());
        assert_eq!(next_frame(&[0, 0, 0, 0], 255), Ok(Some((4, 4))));
    }
}
