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

    /// Passes over `n` bytes.
    pub fn skip(&mut self, n: usize, field: &'static str) -> Result<(), DecodeError> {
        self.take(n, field).map(|_| ())
    }

    pub fn int8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    /// Checks that the record used every byte: trailing bytes are an error naming `field`.
    pub fn expect_end(&self, field: &'static str) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::BadLength {
                field,
                len: i32::try_from(n).unwrap_or(i32::MAX),
            }),
        }
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
                Ok(java_utf8_lossy(raw))
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

/// Decodes bytes as Java's `new String(bytes, UTF_8)` does, which is how ZooKeeper reads every
/// string: each malformed sequence becomes one U+FFFD, where Java's decoder draws the sequence's
/// bounds (a UTF-8-encoded surrogate, for one, is a single malformed sequence of three bytes,
/// where Rust's lossy decoding would give three U+FFFD). Paths such a decode yields are refused
/// by path validation (U+FFFD is in its refused range) and echoed by sync and watches, so the
/// count shows.
pub fn java_utf8_lossy(src: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(src) {
        return s.to_owned();
    }
    const REPL: char = '\u{FFFD}';
    let cont = |b: u8| b & 0xc0 == 0x80;
    let mut out = String::with_capacity(src.len() + 8);
    let n = src.len();
    let mut i = 0;
    while i < n {
        let b1 = src[i];
        i += 1;
        match b1 {
            0x00..=0x7f => out.push(b1 as char),
            0xc2..=0xdf => {
                if i == n {
                    out.push(REPL);
                    break;
                }
                let b2 = src[i];
                if cont(b2) {
                    i += 1;
                    let c = ((b1 as u32 & 0x1f) << 6) | (b2 as u32 & 0x3f);
                    out.push(char::from_u32(c).expect("two-byte form"));
                } else {
                    out.push(REPL); // b2 is read again
                }
            }
            0xe0..=0xef => {
                let overlong = |b2: u8| b1 == 0xe0 && b2 & 0xe0 == 0x80;
                if i + 1 < n {
                    let (b2, b3) = (src[i], src[i + 1]);
                    if overlong(b2) || !cont(b2) || !cont(b3) {
                        out.push(REPL);
                        // Skips b2 as well when it was a fine continuation.
                        if !overlong(b2) && cont(b2) {
                            i += 1;
                        }
                    } else {
                        i += 2;
                        let c = ((b1 as u32 & 0x0f) << 12)
                            | ((b2 as u32 & 0x3f) << 6)
                            | (b3 as u32 & 0x3f);
                        // A surrogate (0xd800..=0xdfff) is not a char: one U+FFFD for all three.
                        out.push(char::from_u32(c).unwrap_or(REPL));
                    }
                    continue;
                }
                if i < n && (overlong(src[i]) || !cont(src[i])) {
                    out.push(REPL); // src[i] is read again
                    continue;
                }
                out.push(REPL);
                break;
            }
            0xf0..=0xf7 => {
                let bad_second = |b2: u8| {
                    (b1 == 0xf0 && !(0x90..=0xbf).contains(&b2))
                        || (b1 == 0xf4 && b2 & 0xf0 != 0x80)
                        || !cont(b2)
                };
                if i + 2 < n {
                    let (b2, b3, b4) = (src[i], src[i + 1], src[i + 2]);
                    let c = ((b1 as u32 & 0x07) << 18)
                        | ((b2 as u32 & 0x3f) << 12)
                        | ((b3 as u32 & 0x3f) << 6)
                        | (b4 as u32 & 0x3f);
                    if !cont(b2) || !cont(b3) || !cont(b4) || !(0x10000..=0x10ffff).contains(&c) {
                        out.push(REPL);
                        if b1 > 0xf4 || bad_second(b2) {
                            // only b1 is skipped
                        } else if !cont(b3) {
                            i += 1;
                        } else {
                            i += 2;
                        }
                    } else {
                        i += 3;
                        out.push(char::from_u32(c).expect("checked range"));
                    }
                    continue;
                }
                if b1 > 0xf4 || (i < n && bad_second(src[i])) {
                    out.push(REPL);
                    continue;
                }
                i += 1;
                out.push(REPL);
                if i < n && !cont(src[i]) {
                    continue;
                }
                break;
            }
            _ => out.push(REPL),
        }
    }
    out
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

    /// A string as ZooKeeper's jute writes one: each UTF-16 unit as one to three bytes, so a
    /// character outside the BMP goes out as its two surrogates, three bytes each (CESU-8), not
    /// as the four bytes of UTF-8. Only strings a client sent can hold such characters (paths
    /// never do), and ZooKeeper echoes them this way: in sync, in watch events set by setWatches,
    /// in whoAmI and getACL.
    pub fn ustring(&mut self, v: &str) -> &mut Self {
        // A four-byte UTF-8 sequence, and only such a sequence, starts with a byte of 0xf0 or more.
        if !v.bytes().any(|b| b >= 0xf0) {
            return self.buffer(v.as_bytes());
        }
        let mut units = [0u16; 2];
        let len: usize = v
            .chars()
            .map(|c| if c.len_utf8() == 4 { 6 } else { c.len_utf8() })
            .sum();
        self.buf.put_i32(len as i32);
        for c in v.chars() {
            if c.len_utf8() < 4 {
                self.buf.put_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes());
                continue;
            }
            for u in c.encode_utf16(&mut units).iter() {
                let u = *u as u32;
                self.buf.put_u8((0xe0 | (u >> 12)) as u8);
                self.buf.put_u8((0x80 | ((u >> 6) & 0x3f)) as u8);
                self.buf.put_u8((0x80 | (u & 0x3f)) as u8);
            }
        }
        self
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

    /// What Java 17's `new String(bytes, UTF_8)` gives, as UTF-16 units (recorded from the JDK;
    /// the decoder also matched it on 300,000 random byte strings).
    #[test]
    fn malformed_utf8_decodes_as_java_decodes_it() {
        let cases: &[(&[u8], &[u16])] = &[
            (b"\xed\xa0\x80", &[0xfffd]),
            (b"\xed\xa0", &[0xfffd]),
            (b"\xee\xed\xb2\x80", &[0xfffd, 0xfffd]),
            (b"\x04\xed\xa0A", &[0x4, 0xfffd, 0x41]),
            (b"\xf0\xed\xa0", &[0xfffd, 0xfffd]),
            (b"\xf0\x9f\x98\x80", &[0xd83d, 0xde00]),
            (b"\xf0\x9f\x98", &[0xfffd]),
            (b"\xc0\xaf", &[0xfffd, 0xfffd]),
            (b"\xf4\x90\x80\x80", &[0xfffd, 0xfffd, 0xfffd, 0xfffd]),
            (b"/u\xffb", &[0x2f, 0x75, 0xfffd, 0x62]),
            (b"\xc9\x80\xf5\xed\xa0", &[0x240, 0xfffd, 0xfffd]),
        ];
        for (bytes, units) in cases {
            let got: Vec<u16> = java_utf8_lossy(bytes).encode_utf16().collect();
            assert_eq!(&got, units, "{bytes:x?}");
        }
    }

    #[test]
    fn strings_go_out_as_zookeepers_jute_writes_them() {
        let mut out = Vec::new();
        Writer::new(&mut out)
            .ustring("/u\u{1F600}")
            .ustring("\u{e9}\u{4e2d}");
        // BinaryOutputArchive.stringToByteBuffer: U+1F600 is D83D DE00, three bytes each.
        assert_eq!(
            out,
            [
                &[0, 0, 0, 8][..],
                b"/u\xed\xa0\xbd\xed\xb8\x80",
                &[0, 0, 0, 5],
                "\u{e9}\u{4e2d}".as_bytes()
            ]
            .concat()
        );
        // And Java reads those bytes back as two malformed sequences.
        let back = Reader::new(&out).ustring("s").unwrap();
        assert_eq!(back, "/u\u{FFFD}\u{FFFD}");
    }

    #[test]
    fn truncation_is_an_error() {
        assert_eq!(
            Reader::new(&[0, 0]).int("xid"),
            Err(DecodeError::Truncated { field: "xid" })
        );
    }
}
