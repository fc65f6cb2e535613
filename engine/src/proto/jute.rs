//! Jute primitives: the big-endian encoding every ZooKeeper record is built from.
//!
//! `int` is 4 bytes, `long` 8, `boolean` 1; `buffer`, `ustring` and `vector` are an `int` length
//! (-1 meaning null) followed by the bytes or elements. Readers never trust a length: every one is
//! checked against the bytes that remain before anything is allocated.

use bytes::{BufMut, Bytes};

/// Why a record could not be decoded. Always the peer's fault, never a panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The record ended before a field did.
    Truncated { field: &'static str },
    /// A length prefix was negative (other than null) or larger than what remains.
    BadLength { field: &'static str, len: i32 },
    /// A string was not UTF-8.
    /// A value outside its domain (e.g. an unknown watch mode).
    BadValue { field: &'static str, value: i64 },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated { field } => write!(f, "record truncated in field {field}"),
            DecodeError::BadLength { field, len } => {
                write!(f, "bad length {len} for field {field}")
            }
            DecodeError::BadValue { field, value } => {
                write!(f, "bad value {value} for field {field}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Reads jute fields from a byte slice, front to back.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated { field });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn int(&mut self, field: &'static str) -> Result<i32, DecodeError> {
        let b = self.take(4, field)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn long(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        let b = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    pub fn int8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    pub fn boolean(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        Ok(self.take(1, field)?[0] != 0)
    }

    /// A length prefix: `None` for null (-1), an error for any other negative or oversized value.
    fn len(
        &mut self,
        field: &'static str,
        elem_min_bytes: usize,
    ) -> Result<Option<usize>, DecodeError> {
        let len = self.int(field)?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 || (len as usize).saturating_mul(elem_min_bytes) > self.remaining() {
            return Err(DecodeError::BadLength { field, len });
        }
        Ok(Some(len as usize))
    }

    /// A buffer; null decodes as empty, as ZooKeeper's server treats it.
    pub fn buffer(&mut self, field: &'static str) -> Result<Bytes, DecodeError> {
        match self.len(field, 1)? {
            None => Ok(Bytes::new()),
            Some(n) => Ok(Bytes::copy_from_slice(self.take(n, field)?)),
        }
    }

    /// A buffer that may be null (kept distinct from empty).
    pub fn buffer_opt(&mut self, field: &'static str) -> Result<Option<Bytes>, DecodeError> {
        match self.len(field, 1)? {
            None => Ok(None),
            Some(n) => Ok(Some(Bytes::copy_from_slice(self.take(n, field)?))),
        }
    }

    /// A ustring; null decodes as empty. Bytes that are not UTF-8 become U+FFFD, as Java's
    /// decoder (`new String(bytes, UTF_8)`) turns them, so such a path is refused by path
    /// validation (BADARGUMENTS) or simply not found, as in ZooKeeper, rather than failing to
    /// decode.
    pub fn ustring(&mut self, field: &'static str) -> Result<String, DecodeError> {
        match self.len(field, 1)? {
            None => Ok(String::new()),
            Some(n) => {
                let raw = self.take(n, field)?;
                Ok(String::from_utf8_lossy(raw).into_owned())
            }
        }
    }

    /// A vector; `elem_min_bytes` bounds the count before any allocation. Null decodes as empty.
    pub fn vector<T>(
        &mut self,
        field: &'static str,
        elem_min_bytes: usize,
        mut elem: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        match self.len(field, elem_min_bytes.max(1))? {
            None => Ok(Vec::new()),
            Some(n) => {
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    out.push(elem(self)?);
                }
                Ok(out)
            }
        }
    }
}

/// Appends jute fields to a growable buffer.
pub struct Writer<'a, B: BufMut> {
    buf: &'a mut B,
}

impl<'a, B: BufMut> Writer<'a, B> {
    pub fn new(buf: &'a mut B) -> Self {
        Writer { buf }
    }

    pub fn int(&mut self, v: i32) -> &mut Self {
        self.buf.put_i32(v);
        self
    }

    pub fn long(&mut self, v: i64) -> &mut Self {
        self.buf.put_i64(v);
        self
    }

    pub fn byte(&mut self, v: u8) -> &mut Self {
        self.buf.put_u8(v);
        self
    }

    pub fn boolean(&mut self, v: bool) -> &mut Self {
        self.buf.put_u8(v as u8);
        self
    }

    pub fn buffer(&mut self, v: &[u8]) -> &mut Self {
        self.buf.put_i32(v.len() as i32);
        self.buf.put_slice(v);
        self
    }

    /// A buffer that may be null: `None` is written as length -1.
    pub fn buffer_opt(&mut self, v: Option<&[u8]>) -> &mut Self {
        match v {
            Some(v) => self.buffer(v),
            None => self.null(),
        }
    }

    pub fn null(&mut self) -> &mut Self {
        self.buf.put_i32(-1);
        self
    }

    pub fn ustring(&mut self, v: &str) -> &mut Self {
        self.buffer(v.as_bytes())
    }

    pub fn vector<T>(&mut self, items: &[T], mut elem: impl FnMut(&mut Self, &T)) -> &mut Self {
        self.buf.put_i32(items.len() as i32);
        for item in items {
            elem(self, item);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_round_trip() {
        let mut out = Vec::new();
        Writer::new(&mut out)
            .int(-7)
            .long(1 << 40)
            .boolean(true)
            .buffer(b"ab")
            .ustring("zk");
        let mut r = Reader::new(&out);
        assert_eq!(r.int("i").unwrap(), -7);
        assert_eq!(r.long("l").unwrap(), 1 << 40);
        assert!(r.boolean("b").unwrap());
        assert_eq!(&r.buffer("buf").unwrap()[..], b"ab");
        assert_eq!(r.ustring("s").unwrap(), "zk");
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn lengths_are_checked_before_allocation() {
        let mut out = Vec::new();
        Writer::new(&mut out).int(i32::MAX);
        assert_eq!(
            Reader::new(&out).buffer("data"),
            Err(DecodeError::BadLength {
                field: "data",
                len: i32::MAX
            })
        );
        assert_eq!(
            Reader::new(&out).vector("acl", 8, |r| r.int("perms")),
            Err(DecodeError::BadLength {
                field: "acl",
                len: i32::MAX
            })
        );
        let mut neg = Vec::new();
        Writer::new(&mut neg).int(-2);
        assert!(matches!(
            Reader::new(&neg).ustring("path"),
            Err(DecodeError::BadLength { .. })
        ));
    }

    #[test]
    fn null_decodes_as_empty() {
        let mut out = Vec::new();
        Writer::new(&mut out).null().null();
        let mut r = Reader::new(&out);
        assert_eq!(r.ustring("s").unwrap(), "");
        assert_eq!(r.buffer_opt("b").unwrap(), None);
    }

    #[test]
    fn malformed_utf8_becomes_replacement_characters_as_in_java() {
        let mut out = Vec::new();
        Writer::new(&mut out).buffer(b"/a\xffb\xed\xa0\x80");
        let s = Reader::new(&out).ustring("path").unwrap();
        assert!(s.starts_with("/a\u{FFFD}b"), "{s:?}");
        assert!(s.ends_with('\u{FFFD}'), "{s:?}");
    }

    #[test]
    fn truncation_is_an_error() {
        assert_eq!(
            Reader::new(&[0, 0]).int("xid"),
            Err(DecodeError::Truncated { field: "xid" })
        );
    }
}
